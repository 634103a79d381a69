"""The comparability guard: which fields refuse a comparison, which only warn."""
from busbench.evidence import environment as env


def _env(**changes):
    base = {"cpu_model": "AMD EPYC", "cores": 2, "cores_usable": 2, "machine": "x86_64",
            "os": "Linux", "hostname": "vm", "python": "3.11.7", "numba": "0.68.1",
            "numpy": "2.4.6", "busbench": "0.1.0", "cpu_governor": None, "cpu_mhz": 2600.0,
            "load_average_at_start": [0.1, 0.1, 0.1], "scenario_hash": "abc"}
    return base | changes


def test_identical_environments_are_comparable_without_warnings():
    found = env.check(_env(), _env())
    assert found.comparable and found.warnings == ()


def test_each_deciding_field_refuses_and_names_both_values():
    for key, value in (("cpu_model", "Intel Xeon"), ("cores_usable", 8), ("machine", "aarch64"),
                       ("scenario_hash", "def")):
        found = env.check(_env(), _env(**{key: value}))
        assert not found.comparable, key
        assert any(key in r and repr(value) in r for r in found.refusals), found.refusals


def test_versions_frequency_and_a_busy_machine_warn_but_do_not_refuse():
    found = env.check(_env(), _env(numba="0.70.0", cpu_mhz=2000.0,
                                   load_average_at_start=[1.9, 1.0, 0.5]))
    assert found.comparable
    text = " ".join(found.warnings)
    assert "numba differs" in text and "frequency differs" in text and "busy machine" in text


def test_a_field_an_old_record_lacks_is_warned_never_taken_as_equal():
    old = _env()
    del old["scenario_hash"]
    found = env.check(old, _env())
    assert found.comparable
    assert any("scenario_hash: not recorded in the baseline" in w for w in found.warnings)


def test_describe_records_what_decides_comparability():
    described = env.describe({"name": "x", "seed": 1})
    for key in env.DECIDING + ("cores", "python", "numba", "busbench", "load_average_at_start",
                               "cpu_mhz", "cpu_governor"):
        assert key in described
    assert described["scenario_hash"] == env.scenario_hash({"seed": 1, "name": "x"})
    assert described["scenario_hash"] != env.scenario_hash({"name": "x", "seed": 2})
