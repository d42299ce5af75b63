"""``dcgenv.comms.make``: the one table of channel names."""

from __future__ import annotations

import dataclasses

import pytest

from dcgenv import comms


@pytest.mark.parametrize("name", sorted(comms.CHANNELS))
def test_every_name_builds_its_class_with_its_fields(name):
    cls = comms.CHANNELS[name]
    channel = comms.make(name)
    assert type(channel) is cls and channel == cls()
    field = next(iter(dataclasses.fields(cls)), None)
    if field is not None:  # a keyword reaches the constructor
        value = getattr(channel, field.name)
        assert getattr(comms.make(name, **{field.name: value}), field.name) == value


def test_unknown_names_and_arguments_are_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="did you mean 'ddcl'.*allowed: continuous, ddcl"):
        comms.make("dccl")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['dleta'\]; allowed: \['delta'"):
        comms.make("ddcl", dleta=0.2)
    with pytest.raises(ValueError, match="delta"):
        comms.make("ddcl", delta=-1.0)  # the channel's own range check still applies


def test_every_channel_class_is_in_the_table():
    """A channel added to comms without a name would be missing from configs and errors."""
    classes = {obj for obj in vars(comms).values()
               if isinstance(obj, type) and issubclass(obj, comms.Channel)}
    wrappers = {comms.WithStop, comms.EntropyCoded, comms.Gated}  # built around a channel
    assert classes - {comms.Channel} - wrappers == set(comms.CHANNELS.values())
    with pytest.raises(ValueError, match="comms.make"):
        comms.check_channel("Test", "ddcl")
