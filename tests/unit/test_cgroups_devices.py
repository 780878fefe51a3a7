"""Device rules: the v1 emulation, the v1 write sequence and the v2 eBPF program."""

import itertools
import struct

import pytest

from pybox.cgroups import devices as D
from pybox.cgroups import ebpf
from pybox.errors import CgroupError

pytestmark = pytest.mark.unit

DENY_ALL = {"allow": False, "access": "rwm"}


def rule(allow, kind, major, minor, access="rwm"):
    return {"allow": allow, "type": kind, "major": major, "minor": minor, "access": access}


def test_oci_linux_cgroups_devices_order_is_kept():
    # runtime-tools validation/linux_cgroups_devices: deny all, then three allows;
    # devices.list must show them in the listed order.
    rules = [DENY_ALL, rule(True, "c", 10, 229), rule(True, "b", 8, 20, "rw"),
             rule(True, "b", 10, 200, "r")]
    target = D.state_from_rules(rules)
    writes = D.v1_transition(D.parse_devices_list("a *:* rwm\n"), target)
    assert writes == [("devices.deny", "a"), ("devices.allow", "c 10:229 rwm"),
                      ("devices.allow", "b 8:20 rw"), ("devices.allow", "b 10:200 r")]


def test_rules_override_in_order_and_wildcard_resets():
    rules = [rule(True, "c", 1, 3), DENY_ALL, rule(True, "c", 1, 5, "r"),
             rule(True, "c", 1, 5, "w"), rule(False, "c", 1, 5, "r")]
    state = D.state_from_rules(rules)
    assert not state.default_allow
    assert state.exceptions == {("c", 1, 5): "w"}


def test_missing_fields_mean_wildcards_and_rwm():
    state = D.state_from_rules([DENY_ALL, {"allow": True, "type": "c"}])
    assert state.exceptions == {("c", -1, -1): "rwm"}
    assert D.format_rule("c", -1, -1, "rwm") == "c *:* rwm"


def test_blacklist_mode_keeps_deny_exceptions():
    state = D.state_from_rules([rule(False, "c", 1, 3, "w")])
    assert state.default_allow
    assert state.exceptions == {("c", 1, 3): "w"}
    writes = D.v1_transition(D.DeviceState(True), state)
    assert writes == [("devices.allow", "a"), ("devices.deny", "c 1:3 w")]


def test_punching_a_hole_in_a_wildcard_is_refused():
    with pytest.raises(CgroupError, match=r"devices\[2\].*hole"):
        D.state_from_rules([DENY_ALL, {"allow": True, "type": "c", "access": "rwm"},
                            rule(False, "c", 1, 3)])


def test_whitelist_update_never_widens_in_between():
    current = D.parse_devices_list("c 1:3 rwm\nc 1:5 rw\nb 8:0 r\n")
    target = D.state_from_rules([DENY_ALL, rule(True, "c", 1, 3, "r"), rule(True, "c", 1, 5, "rwm"),
                                 rule(True, "c", 5, 0)])
    writes = D.v1_transition(current, target)
    # no wildcard reset: whitelist to whitelist is edited in place, removals first
    assert writes == [("devices.deny", "c 1:3 wm"), ("devices.deny", "b 8:0 r"),
                      ("devices.allow", "c 1:5 m"), ("devices.allow", "c 5:0 rwm")]


def test_no_change_means_no_writes():
    current = D.parse_devices_list("c 1:3 rwm\n")
    assert D.v1_transition(current, D.state_from_rules([DENY_ALL, rule(True, "c", 1, 3)])) == []


def test_parse_devices_list_allow_all():
    assert D.parse_devices_list("a *:* rwm\n") == D.DeviceState(True)


# -- eBPF ----------------------------------------------------------------------------

RULESETS = [
    [DENY_ALL],
    [],
    [DENY_ALL, rule(True, "c", 1, 3), rule(True, "c", 1, 5, "r"), rule(True, "b", 8, -1, "rw"),
     {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"}],
    [rule(False, "c", 1, 3), rule(False, "b", 8, 0, "w"), rule(False, "c", 5, -1, "m")],
    [DENY_ALL, {"allow": True, "type": "a"}, rule(False, "c", 10, 200, "rw")],
    [DENY_ALL, {"allow": True, "type": "c", "major": 136}],
]
DEVICES = [(k, ma, mi) for k in "bc" for ma in (1, 5, 8, 10, 136) for mi in (0, 3, 5, 200)]
ACCESSES = ["r", "w", "m", "rw", "rm", "wm", "rwm"]


@pytest.mark.parametrize("rules", RULESETS)
def test_program_agrees_with_the_v1_model(rules):
    state = D.state_from_rules(rules)
    insns = ebpf.program(state)
    for (kind, major, minor), access in itertools.product(DEVICES, ACCESSES):
        expected = state.allows(kind, major, minor, access)
        got = ebpf.run(insns, kind, major, minor, access)
        assert got == (1 if expected else 0), (rules, kind, major, minor, access)


def test_deny_exception_matches_partial_access():
    state = D.state_from_rules([rule(False, "c", 1, 3, "w")])
    insns = ebpf.program(state)
    assert ebpf.run(insns, "c", 1, 3, "r") == 1
    assert ebpf.run(insns, "c", 1, 3, "rw") == 0  # a read-write open is denied


def test_encoding_is_struct_bpf_insn():
    insns = ebpf.program(D.state_from_rules([DENY_ALL]))
    code = ebpf.encode(insns)
    assert len(code) == 8 * len(insns)
    opcode, regs, off, imm = struct.unpack_from("<BBhi", code, 8)  # r2 &= 0xffff
    assert (opcode, regs & 0xF, imm) == (0x54, 2, 0xFFFF)
    assert code[-8] == 0x95  # exit
