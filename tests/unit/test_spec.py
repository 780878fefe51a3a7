"""config.json validation: every error names the JSON path; valid configs pass."""

import copy

import pytest

from pybox.errors import ConfigError
from pybox.oci import spec
from pybox.oci.defaults import default_spec

pytestmark = pytest.mark.unit


def valid():
    cfg = default_spec()
    cfg["process"]["terminal"] = False
    return cfg


def check(cfg):
    return spec.check_config(cfg)


def error_of(cfg):
    with pytest.raises(ConfigError) as info:
        check(cfg)
    return str(info.value)


def test_default_spec_is_valid():
    assert check(valid()) is not None
    assert check(default_spec(rootless=True))


def test_missing_required_fields_named():
    cfg = valid()
    del cfg["ociVersion"]
    assert error_of(cfg) == "ociVersion: is required"
    cfg = valid()
    del cfg["root"]["path"]
    assert error_of(cfg) == "root.path: is required"
    cfg = valid()
    del cfg["process"]
    assert error_of(cfg).startswith("process: is required")


def test_type_errors_carry_json_path():
    cfg = valid()
    cfg["linux"]["resources"]["memory"] = {"limit": "64m"}
    assert error_of(cfg) == "linux.resources.memory.limit: must be an integer"
    cfg = valid()
    cfg["process"]["args"] = ["sh", 3]
    assert error_of(cfg) == "process.args[1]: must be a string"
    cfg = valid()
    cfg["mounts"][2]["options"] = "nosuid"
    assert error_of(cfg) == "mounts[2].options: must be an array"
    cfg = valid()
    cfg["process"]["terminal"] = 1
    assert error_of(cfg) == "process.terminal: must be a boolean"


def test_integer_ranges():
    cfg = valid()
    cfg["process"]["user"]["uid"] = -1
    assert "process.user.uid" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["resources"]["cpu"] = {"shares": 1.5}
    assert error_of(cfg) == "linux.resources.cpu.shares: must be an integer"


def test_unknown_namespace_and_duplicates():
    cfg = valid()
    cfg["linux"]["namespaces"].append({"type": "bogus"})
    assert "unknown namespace type 'bogus'" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["namespaces"].append({"type": "pid"})
    assert "given twice" in error_of(cfg)


def test_hostname_needs_uts_namespace():
    cfg = valid()
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "uts"]
    assert error_of(cfg).startswith("hostname:")


def test_process_rules():
    cfg = valid()
    cfg["process"]["args"] = []
    assert error_of(cfg) == "process.args: must not be empty"
    cfg = valid()
    cfg["process"]["cwd"] = "relative"
    assert "process.cwd" in error_of(cfg)
    cfg = valid()
    cfg["process"]["capabilities"]["bounding"].append("CAP_TEST")
    assert "unknown capability 'CAP_TEST'" in error_of(cfg)
    cfg = valid()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_TEST", "soft": 1, "hard": 1}]
    assert "unknown rlimit" in error_of(cfg)
    cfg = valid()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]
    assert "exceeds hard limit" in error_of(cfg)
    cfg = valid()
    cfg["process"]["env"] = ["NOEQUALS"]
    assert "process.env[0]" in error_of(cfg)


def test_sysctl_must_be_namespaced():
    cfg = valid()
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}
    check(cfg)
    cfg["linux"]["sysctl"]["vm.swappiness"] = "10"
    assert "not namespaced" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["namespaces"] = [{"type": "mount"}]
    cfg.pop("hostname")
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert "network namespace" in error_of(cfg)


def test_resource_values():
    cfg = valid()
    cfg["linux"]["resources"]["memory"] = {"limit": -5}
    assert "memory.limit" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["resources"]["cpu"] = {"quota": 10}
    assert "cpu.quota" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["resources"]["memory"] = {"limit": 100 << 20, "swap": 50 << 20}
    assert "memory.swap" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwx"}]
    assert "devices[0].access" in error_of(cfg)


def test_cgroups_path_escape_rejected():
    cfg = valid()
    cfg["linux"]["cgroupsPath"] = "/a/../../etc"
    assert "linux.cgroupsPath" in error_of(cfg)


def test_unknown_fields_are_ignored():
    cfg = valid()
    cfg["somethingNew"] = {"x": 1}
    cfg["process"]["futureField"] = [1]
    check(cfg)


def test_version_checked():
    cfg = valid()
    cfg["ociVersion"] = "2.0.0"
    assert "unsupported runtime-spec version" in error_of(cfg)


def test_devices_and_hooks():
    cfg = valid()
    cfg["linux"]["devices"] = [{"type": "x", "path": "/dev/foo", "major": 1, "minor": 1}]
    assert "linux.devices[0].type" in error_of(cfg)
    cfg = valid()
    cfg["linux"]["devices"] = [{"type": "c", "path": "/dev/foo"}]
    assert "major and minor" in error_of(cfg)
    cfg = valid()
    cfg["hooks"] = {"prestart": [{"path": "relative/hook"}]}
    assert "hooks.prestart[0].path" in error_of(cfg)
    cfg = valid()
    cfg["hooks"] = {"poststop": [{"path": "/bin/true", "timeout": 0}]}
    assert "timeout" in error_of(cfg)


def test_userns_requires_mappings():
    cfg = valid()
    cfg["linux"]["namespaces"].append({"type": "user"})
    assert "uidMappings" in error_of(cfg)
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    check(copy.deepcopy(cfg))


def test_load_bundle_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        spec.load_bundle_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        spec.load_bundle_config(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match="JSON object"):
        spec.load_bundle_config(str(tmp_path))


@pytest.mark.parametrize("field", ["uid", "gid", "additionalGids"])
def test_unchanged_id_refused(field):
    """(uid_t)-1 in process.user would make setresuid/setresgid/setgroups keep
    the runtime's root: refused, the field named."""
    cfg = valid()
    cfg["process"]["user"][field] = [4294967295] if field == "additionalGids" else 4294967295
    assert error_of(cfg).startswith(f"process.user.{field}: 4294967295 is (uid_t)-1")
    cfg["process"]["user"][field] = [4294967294] if field == "additionalGids" else 4294967294
    assert check(cfg) is not None
