"""busbench's own redis-server: started, password required, faults, always stopped."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from busbench.targets.netmesh.abi import NetMeshError
from busbench.targets.netmesh.redis_server import RedisServer, probe


def test_started_answers_with_password_and_refuses_without(no_redis_left):
    with RedisServer() as server:
        assert server.running
        c = server.client()
        assert c.ping()
        c.close()
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        assert server.client().config_get("save")["save"] == ""
        assert server.client().config_get("appendonly")["appendonly"] == "no"
        pid, folder = server.pid, server.dir
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(folder)


def test_stopped_even_when_frozen(no_redis_left):
    server = RedisServer().start()
    server.stall()
    server.close()          # SIGCONT then SIGTERM: must not wait forever on a stopped process
    assert not server.running
    server.close()          # idempotent


def test_stall_freezes_and_resume_thaws(no_redis_left):
    with RedisServer() as server:
        server.stall()
        c = server.client(timeout_s=0.3)
        with pytest.raises(redis.exceptions.TimeoutError):
            c.ping()
        server.resume()
        c2 = server.client()
        assert c2.ping()
        c.close()
        c2.close()


def test_kill_and_restart_same_url(no_redis_left):
    with RedisServer() as server:
        c = server.client()
        c.set("k", "v")
        url = server.url
        server.kill()
        assert not server.running
        server.restart()
        assert server.url == url
        c = server.client()
        assert c.get("k") is None       # not durable: the restarted server is empty
        c.close()


def test_durable_restart_keeps_data(no_redis_left):
    with RedisServer(durable=True) as server:
        c = server.client()
        c.xadd("s", {"a": "1"})
        server.kill()
        server.restart()
        c = server.client()
        assert c.xlen("s") == 1
        c.close()


def test_probe_fails_fast_on_unreachable_and_bad_password(no_redis_left):
    start = time.monotonic()
    with pytest.raises(NetMeshError, match="unreachable"):
        probe("redis://127.0.0.1:1/0", timeout_s=1.0)
    assert time.monotonic() - start < 5       # generous: the point is not ~9.5 s of net_init
    with pytest.raises(NetMeshError, match="not redis://"):
        probe("notaurl")
    with RedisServer() as server:
        with pytest.raises(NetMeshError, match="password"):
            probe(f"redis://:wrong@127.0.0.1:{server.port}/0")
        probe(server.url)


def test_killed_parent_takes_its_server_along(no_redis_left):
    """PR_SET_PDEATHSIG: a busbench killed with SIGKILL leaves no redis-server."""
    code = textwrap.dedent("""
        import sys, time
        from busbench.targets.netmesh.redis_server import RedisServer
        s = RedisServer().start()
        print(s.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        os.kill(pid, 0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restart_from_a_short_lived_thread_survives_that_thread(no_redis_left):
    """PDEATHSIG fires when the forking *thread* ends: restarts go through the
    server's own spawner thread, so a fault timer's restart is not killed with it."""
    import threading

    with RedisServer() as server:
        server.kill()
        t = threading.Thread(target=server.restart)
        t.start()
        t.join(15)
        time.sleep(0.5)
        assert server.running
        c = server.client()
        assert c.ping()
        c.close()
