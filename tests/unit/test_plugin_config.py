"""Managed plugins' pure parts (engine/plugins.py): config.json decoded as
moby's json.Unmarshal into PluginConfig (the words dockerd 20.10 answers with,
observed on it), computePrivileges, `docker plugin set`'s settables, names,
and the split of a create's tar into config.json and rootfs/."""

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from pybox.engine import plugins as pl
from pybox.errors import PyboxError


def parse(text):
    return pl.parse_config(text.encode() if isinstance(text, str) else text)


def parse_error(text):
    with pytest.raises(PyboxError) as info:
        parse(text)
    return str(info.value)


DUMMY = """{
    "description": "Dummy test plugin",
    "documentation": "https://example.com",
    "entrypoint": ["/dummy"],
    "network": {"type": "host"},
    "interface" : {"types": ["docker.volumedriver/1.0"], "socket": "dummy.sock"},
    "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}]
}"""


def test_config_keys_case_insensitive_and_zero_values_filled_in():
    config = parse(DUMMY)
    assert config["Description"] == "Dummy test plugin"
    assert config["Entrypoint"] == ["/dummy"]
    assert config["Env"] == [{"Description": "", "Name": "DEBUG", "Settable": ["value"],
                              "Value": "0"}]
    assert config["Interface"] == {"ProtocolScheme": "", "Socket": "dummy.sock",
                                   "Types": ["docker.volumedriver/1.0"]}
    assert config["Linux"] == {"AllowAllDevices": False, "Capabilities": None, "Devices": None}
    assert config["Mounts"] is None and config["Args"]["Value"] is None
    # docker's JSON: Go's field order, omitempty fields left out, rootfs only when set
    shown = pl.config_json(config)
    assert list(shown) == ["Args", "Description", "Documentation", "Entrypoint", "Env",
                           "Interface", "IpcHost", "Linux", "Mounts", "Network", "PidHost",
                           "PropagatedMount", "User", "WorkDir"]
    assert shown["User"] == {} and "ProtocolScheme" not in shown["Interface"]


def test_unknown_keys_ignored_exact_key_wins_null_is_zero():
    config = parse('{"Description": "a", "description": "b", "bogus": 1, "user": null}')
    assert config["Description"] == "b"  # the last one Go meets, whatever its case
    assert config["User"] == {"GID": 0, "UID": 0}
    assert parse("null")["Network"] == {"Type": ""}


@pytest.mark.parametrize("text, words", [
    ("{", "unexpected end of JSON input"),
    ("", "unexpected end of JSON input"),
    ("{}{}", "invalid character '{' after top-level value"),
    ("[]", "json: cannot unmarshal array into Go value of type types.PluginConfig"),
    ('{"description": 5}', "json: cannot unmarshal number into Go struct field "
                           "PluginConfig.Description of type string"),
    ('{"user": {"uid": -1}}', "json: cannot unmarshal number -1 into Go struct field "
                              "PluginConfigUser.User.UID of type uint32"),
    ('{"user": {"uid": 1.5}}', "json: cannot unmarshal number 1.5 into Go struct field "
                               "PluginConfigUser.User.UID of type uint32"),
    ('{"interface": {"types": [5]}}', '"5" is not a plugin interface type'),
    ('{"env": {}}', "json: cannot unmarshal object into Go struct field PluginConfig.Env of "
                    "type []types.PluginEnv"),
    ('{"entrypoint": "/x"}', "json: cannot unmarshal string into Go struct field "
                             "PluginConfig.Entrypoint of type []string"),
    ('{"env": [{"name": 1}]}', "json: cannot unmarshal number into Go struct field "
                               "PluginEnv.Env.Name of type string"),
    ('{"ipchost": "yes"}', "json: cannot unmarshal string into Go struct field "
                           "PluginConfig.IpcHost of type bool"),
    ('{"a" 1}', "invalid character '1' after object key"),
    ('{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    ('{"entrypoint": ["a" "b"]}', "invalid character '\"' after array element"),
    ('{"a": NaN}', "invalid character 'N' looking for beginning of value"),
])
def test_config_errors_in_dockerds_words(text, words):
    assert parse_error(text) == "failed to parse config: " + words


def test_first_type_error_wins_after_the_whole_decode():
    assert parse_error('{"description": 1, "workdir": 2}').endswith(
        "PluginConfig.Description of type string")


def test_interface_types_split_as_moby():
    assert pl.split_interface_type("docker.volumedriver/1.0") == ("docker", "volumedriver", "1.0")
    # no '.': moby's loop leaves prefix index 0 and the capability loses a character
    assert pl.split_interface_type("volumedriver/1.0") == ("", "olumedriver", "1.0")
    assert pl.split_interface_type("a.b.c") == ("a.b", "c", "")
    assert parse('{"interface": {"types": ["volumedriver/1.0"]}}')["Interface"]["Types"] == [
        ".olumedriver/1.0"]


def test_compute_privileges():
    config = parse("""{"network": {"type": "host"}, "ipchost": true, "pidhost": true,
        "mounts": [{"name": "m", "source": "/var/lib"}, {"name": "nosource"}],
        "linux": {"allowAllDevices": true, "capabilities": ["CAP_SYS_ADMIN"],
                  "devices": [{"name": "d", "path": "/dev/fuse"}]}}""")
    assert pl.compute_privileges(config) == [
        {"Name": "network", "Description": "permissions to access a network", "Value": ["host"]},
        {"Name": "host ipc namespace", "Description": "allow access to host ipc namespace",
         "Value": ["true"]},
        {"Name": "host pid namespace", "Description": "allow access to host pid namespace",
         "Value": ["true"]},
        {"Name": "mount", "Description": "host path to mount", "Value": ["/var/lib"]},
        {"Name": "device", "Description": "host device to access", "Value": ["/dev/fuse"]},
        {"Name": "allow-all-devices", "Description": "allow 'rwm' access to all devices",
         "Value": ["true"]},
        {"Name": "capabilities", "Description": "list of additional capabilities required",
         "Value": ["CAP_SYS_ADMIN"]},
    ]
    for network in ("bridge", "null", ""):
        assert pl.compute_privileges(parse(f'{{"network": {{"type": "{network}"}}}}')) == []


def plugin_of(text):
    config = parse(text)
    return {"Config": config, "Enabled": False, "Settings": pl.initial_settings(config)}


FULL = """{"env": [{"name": "DEBUG", "settable": ["value"], "value": "0"},
                   {"name": "NOVALUE", "settable": ["value"]},
                   {"name": "FIXED", "value": "1"}],
           "mounts": [{"name": "m", "source": "/tmp", "destination": "/m",
                       "settable": ["source"]}],
           "linux": {"devices": [{"name": "d", "path": "/dev/null", "settable": ["path"]}]},
           "args": {"name": "a", "value": ["x", "y"], "settable": ["value"]}}"""


def test_initial_settings_and_set():
    p = plugin_of(FULL)
    assert p["Settings"]["Env"] == ["DEBUG=0", "FIXED=1"]  # an env without value: none
    assert p["Settings"]["Args"] == ["x", "y"]
    pl.apply_settings(p, ["DEBUG=1", "NOVALUE=v", "m=/var", "d.path=/dev/zero", "a=p q  r"])
    assert p["Settings"]["Env"] == ["DEBUG=1", "FIXED=1", "NOVALUE=v"]
    assert p["Settings"]["Args"] == ["p", "q", "", "r"]  # split on each space, as moby
    # a mount's source and a device's path change in the config too (moby's shared pointer)
    assert p["Settings"]["Mounts"][0]["Source"] == p["Config"]["Mounts"][0]["Source"] == "/var"
    assert p["Settings"]["Devices"][0]["Path"] == p["Config"]["Linux"]["Devices"][0]["Path"] \
        == "/dev/zero"
    pl.apply_settings(p, ["DEBUG"])
    assert p["Settings"]["Env"][0] == "DEBUG="


@pytest.mark.parametrize("arg, words", [
    ("FOO=1", 'setting "FOO" not found in the plugin configuration'),
    ("=1", "invalid format, must be <name>[.<field>][=<value>]"),
    ("DEBUG.path=1", '"DEBUG.path" is not settable'),
    ("FIXED=2", '"FIXED" is not settable'),
    ("m.destination=/x", '"m.destination" is not settable'),
    ("a.name=x", '"a.name" is not settable'),
])
def test_set_errors(arg, words):
    p = plugin_of(FULL)
    with pytest.raises(PyboxError) as info:
        pl.apply_settings(p, [arg])
    assert str(info.value) == words


def test_set_multiple_settable_fields_and_enabled():
    p = plugin_of('{"env": [{"name": "E", "settable": ["value", "path"], "value": "0"}]}')
    with pytest.raises(PyboxError, match="multiple fields are settable, one must be specified"):
        pl.apply_settings(p, ["E=1"])
    p["Enabled"] = True
    with pytest.raises(PyboxError, match="cannot set on an active plugin, disable plugin "
                                         "before setting"):
        pl.apply_settings(p, ["E.value=1"])


def test_names():
    assert pl.plugin_name("me/dummy") == "me/dummy:latest"
    assert pl.plugin_name("docker.io/library/dummy:v1") == "dummy:v1"
    assert pl.plugin_name("localhost:5000/me/p") == "localhost:5000/me/p:latest"
    with pytest.raises(PyboxError, match="canonical references are not permitted"):
        pl.plugin_name("me/p@sha256:" + "a" * 64)
    with pytest.raises(PyboxError, match="failed to parse reference Bad: invalid reference "
                                         "format"):
        pl.plugin_name("Bad")
    ref, tag = pl.remote_reference("vieux/sshfs")
    assert (str(ref), tag) == ("docker.io/vieux/sshfs:latest", "")
    assert pl.local_name(ref, tag, "") == "vieux/sshfs:latest"
    assert pl.local_name(ref, tag, "mine") == "mine:latest"
    assert pl.local_name(ref, tag, "mine:v2") == "mine:v2"
    with pytest.raises(PyboxError, match="cannot use digest in plugin tag"):
        pl.local_name(ref, tag, "mine@sha256:" + "b" * 64)


def test_go_atoi():
    assert pl.go_atoi("30") == 30 and pl.go_atoi("-1") == -1 and pl.go_atoi("+7") == 7
    with pytest.raises(PyboxError, match=r'strconv.Atoi: parsing "": invalid syntax'):
        pl.go_atoi("")
    with pytest.raises(PyboxError, match="value out of range"):
        pl.go_atoi("9" * 30)


def tar_of(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def names_in(f):
    with tarfile.open(fileobj=f, mode="r") as t:
        return [(m.name, m.linkname) for m in t]


def test_split_plugin_tar_renames_rootfs_and_drops_the_rest():
    out, layer = io.BytesIO(), io.BytesIO()
    config, diff_id, size = pl.split_plugin_tar(tar_of(
        ("config.json", b"{}"), ("rootfs/", None), ("rootfs/a", b"x"), ("other/b", b"y"),
        ("rootfs/../../escape", b"z"), ("/rootfs/h", (tarfile.LNKTYPE, "rootfs/a"))), out, layer)
    assert config == b"{}"
    assert names_in(out) == [(".", ""), ("a", ""), ("h", "a")]
    # the layer blob: the rootfs tar gzip'd, its digest the config's diff_id (as moby's)
    assert diff_id == "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    assert size == len(layer.getvalue())
    assert gzip.decompress(layer.getvalue()) == out.getvalue()


def test_manifest_and_privileges_comparison():
    doc = json.loads(pl.build_manifest(("sha256:" + "c" * 64, 10), [("sha256:" + "l" * 64, 20)]))
    assert doc == {"schemaVersion": 2,
                   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "config": {"mediaType": "application/vnd.docker.plugin.v1+json", "size": 10,
                              "digest": "sha256:" + "c" * 64},
                   "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                               "size": 20, "digest": "sha256:" + "l" * 64}]}
    required = pl.compute_privileges(parse('{"network": {"type": "host"}, "ipchost": true}'))
    given = [{"Name": "network", "Value": ["host"]},
             {"Name": "host ipc namespace", "Value": ["true"]}]
    assert pl.privileges_equal(required, given)
    assert pl.privileges_equal(required, list(reversed(given)))
    assert not pl.privileges_equal(required, given[:1])
    assert not pl.privileges_equal(required, [{"Name": "network", "Value": ["none"]}, given[1]])
    # moby's loop starts at 1: the first by name ("host ipc namespace") is not compared
    assert pl.privileges_equal(required, [given[0], {"Name": "host ipc namespace",
                                                     "Value": ["false"]}])


@pytest.mark.parametrize("members, words", [
    ((), "no rootfs found: EOF"),
    ((("config.json", b"{}"),), "no rootfs found: EOF"),
])
def test_split_plugin_tar_errors(members, words):
    with pytest.raises(PyboxError, match=words):
        pl.split_plugin_tar(tar_of(*members), io.BytesIO())
    with pytest.raises(PyboxError, match="failed to read from tar: archive/tar: invalid tar "
                                         "header"):
        pl.split_plugin_tar(io.BytesIO(b"not a tar at all" * 64), io.BytesIO())
