"""The net-mesh target's configuration: what net-mesh would ignore silently is an error here."""
from __future__ import annotations

import json

import pytest

from busbench.targets.netmesh import NetMeshConfig, NetMeshConfigError, NetMeshTarget


@pytest.mark.parametrize("data, key, suggestion", [
    ({"num_shard": 4}, "num_shard", "num_shards"),
    ({"backpressure_mode": "DropOldset"}, "backpressure_mode", "DropOldest"),
    ({"redis": {"prefx": "a"}}, "redis.prefx", "prefix"),
    ({"ring_buffer_capacity": 512}, "ring_buffer_capacity", None),
    ({"ring_buffer_capacity": 3000}, "ring_buffer_capacity", None),
    ({"adapter": "nop"}, "adapter", "noop"),
    ({"adapter": "noop", "redis": {"url": "redis://x"}}, "redis", None),
])
def test_mistakes_name_the_key(data, key, suggestion):
    with pytest.raises(NetMeshConfigError) as e:
        NetMeshConfig.from_dict(data)
    assert e.value.key == key
    assert e.value.suggestion == suggestion
    assert str(e.value).startswith(f"target net-mesh: {key}:")


def test_init_json_has_only_keys_net_mesh_reads():
    cfg = NetMeshConfig.from_dict({"backpressure_mode": "drop_oldest", "redis": {"max_stream_len": 10}})
    got = json.loads(cfg.init_json("redis://h:1", "p"))
    assert got == {"num_shards": 4, "ring_buffer_capacity": 65536, "backpressure_mode": "DropOldest",
                   "redis": {"url": "redis://h:1", "prefix": "p", "max_stream_len": 10}}


def test_capabilities_are_honest():
    caps = NetMeshTarget({}).capabilities
    assert caps.counters == {"events_ingested", "events_dropped", "batches_dispatched"}
    assert "events_dispatched" not in caps.counters
    assert caps.lossy_flag is False and caps.shutdown_report is False and caps.shard_fill is False
    assert caps.witness == "redis streams"
    assert NetMeshTarget({"adapter": "noop"}).capabilities.witness is None
    assert "stall_adapter" not in NetMeshTarget({"redis": {"url": "redis://h:1"}}).capabilities.faults
    notes = NetMeshTarget({}).not_observable
    assert {"events_dispatched", "shutdown_was_lossy"} <= set(notes)
    assert "delivery" in NetMeshTarget({"adapter": "noop"}).not_observable
