"""MQTT topic names (SPEC 6.10.2), built and parsed in one place.

Every terminal's topics are `daozhang/v1/<device-id>/<leaf>`; the device id
is one topic level (core/device_id.py keeps '/', '+', '#' out of it).
Up: receipts, alerts, status (retained, also the will).  Down: acks
(receipt and settlement acks), config (retained).
"""

ROOT = "daozhang/v1/"
RECEIPTS = "receipts"
ALERTS = "alerts"
STATUS = "status"
ACKS = "acks"
CONFIG = "config"
UP = (RECEIPTS, ALERTS, STATUS)
DOWN = (ACKS, CONFIG)


def device_prefix(device_id):
    """`daozhang/v1/<id>/`: a terminal's topics are this plus a leaf."""
    return ROOT + device_id + "/"


def device_topic(device_id, leaf):
    return ROOT + device_id + "/" + leaf


def every_device(leaf):
    """The subscription filter for one leaf of every terminal."""
    return ROOT + "+/" + leaf


def shared(group, leaf):
    """An MQTT 5 shared subscription to one leaf of every terminal (SPEC 6.10.4)."""
    return "$share/" + group + "/" + every_device(leaf)


def parse(topic):
    """(device id, leaf) of `daozhang/v1/<id>/<leaf>`, or (None, None)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "daozhang" or parts[1] != "v1" or not parts[2] or not parts[3]:
        return None, None
    return parts[2], parts[3]
