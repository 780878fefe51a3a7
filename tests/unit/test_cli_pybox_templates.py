"""docker's Go-template subset for --format, and the table directive."""

import pytest

from pybox.cli.pybox.formatting import (
    HISTORY_TABLE,
    IMAGES_TABLE,
    PS_TABLE,
    ContainerRow,
    HistoryRow,
    ImageRow,
    image_rows,
    render_rows,
)
from pybox.cli.pybox.templates import TemplateError, render

pytestmark = pytest.mark.unit

INSPECT = {"Id": "abc", "Name": "/web", "State": {"Pid": 4242, "Running": True,
                                                   "Status": "running"},
           "Config": {"Env": ["A=1", "B=2"], "Labels": {"z": "1", "a": "2"}, "Cmd": ["sh"],
                      "Entrypoint": None, "Tty": False},
           "HostConfig": {"Memory": 67108864}, "Mounts": [{"Source": "/s", "Destination": "/d"}]}


@pytest.mark.parametrize("template,expected", [
    ("{{.State.Pid}}", "4242"),
    ("{{.Name}}", "/web"),
    ("{{json .Config.Labels}}", '{"a":"2","z":"1"}'),
    ("{{json .State}}", '{"Pid":4242,"Running":true,"Status":"running"}'),
    ("{{.HostConfig.Memory}}", "67108864"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:2 z:1]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{range .Config.Env}}<{{.}}>{{end}}", "<A=1><B=2>"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=2;z=1;"),
    ("{{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}", "/s:/d"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}x{{else if .Config.Tty}}t{{else}}n{{end}}", "n"),
    ("{{index .Config.Labels \"z\"}}", "1"),
    ("{{index .Config.Env 1}}", "B=2"),
    ("{{.Name | upper}}", "/WEB"),
    ("{{join .Config.Env \",\"}}", "A=1,B=2"),
    ("{{printf \"%s-%d\" .Name .State.Pid}}", "/web-4242"),
    ("{{len .Config.Env}}", "2"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{- .Id -}} \n", "abc"),
    ("{{$x := .Name}}{{$x}}", "/web"),
    ("{{lower (index .Config.Labels \"a\")}}", "2"),
    ("{{/* comment */}}ok", "ok"),
])
def test_templates(template, expected):
    assert render(template, INSPECT) == expected


def test_missing_key_is_an_error_as_in_docker():
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render("{{.Nope}}", INSPECT)
    with pytest.raises(TemplateError, match='function "nope" not defined'):
        render("{{nope .Name}}", INSPECT)
    with pytest.raises(TemplateError):
        render("{{if .Name}}", INSPECT)


NOW = 1_800_000_000


def container(**kw):
    c = {"Id": "0123456789abcdef" * 4, "Names": ["/web"], "Image": "busybox",
         "ImageID": "sha256:" + "f" * 64, "Command": "sh -c 'while true; do sleep 1; done'",
         "Created": NOW - 75, "Ports": [], "Labels": {"b": "2", "a": "1"},
         "State": "running", "Status": "Up About a minute", "SizeRw": 12, "SizeRootFs": 1985512}
    c.update(kw)
    return c


def test_ps_table_like_docker():
    rows = [ContainerRow(container(), now=NOW),
            ContainerRow(container(Names=["/db"], Command="true", State="exited",
                                   Status="Exited (137) 2 hours ago", Created=NOW - 7200),
                         now=NOW)]
    out = render_rows("", rows, PS_TABLE, ContainerRow.HEADERS)
    # tabwriter: a column is its widest cell plus 3, at least 10
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED              "
        "STATUS                     PORTS     NAMES",
        "0123456789ab   busybox   \"sh -c 'while true; …\"   About a minute ago   "
        "Up About a minute                    web",
        "0123456789ab   busybox   \"true\"                   2 hours ago          "
        "Exited (137) 2 hours ago             db"]
    assert render_rows("{{.Names}} {{.Size}} {{.Label \"a\"}} {{.Labels}}", rows[:1], PS_TABLE,
                       ContainerRow.HEADERS) == "web 12B (virtual 1.99MB) 1 a=1,b=2\n"
    assert render_rows("table {{.ID}}\\t{{.Names}}", rows[:1], PS_TABLE,
                       ContainerRow.HEADERS) == "CONTAINER ID   NAMES\n0123456789ab   web\n"


def test_ps_json_has_dockers_fields_sorted():
    out = render_rows("json", [ContainerRow(container(), now=NOW)], PS_TABLE,
                      ContainerRow.HEADERS)
    assert out.startswith('{"Command":"\\"sh -c \'while true; …\\"","CreatedAt":')
    assert '"Names":"web","Networks":"","Platform":null,"Ports":""' in out


def test_images_and_history_tables():
    images = [{"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest", "bb:1"],
               "Created": NOW - 3600 * 30, "Size": 1985512},
              {"Id": "sha256:" + "b" * 64, "RepoTags": None, "Created": NOW, "Size": 0}]
    rows = image_rows(images, now=NOW)
    out = render_rows("", rows, IMAGES_TABLE, ImageRow.HEADERS).splitlines()
    assert out[0] == "REPOSITORY   TAG       IMAGE ID       CREATED                  SIZE"
    assert out[1] == "<none>       <none>    bbbbbbbbbbbb   Less than a second ago   0B"
    assert out[2] == "busybox      latest    aaaaaaaaaaaa   30 hours ago             1.99MB"
    assert out[3] == "bb           1         aaaaaaaaaaaa   30 hours ago             1.99MB"
    history = [{"Id": "sha256:" + "c" * 64, "Created": NOW - 60, "CreatedBy":
                "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789 in /", "Size": 1985512,
                "Comment": "Imported from -"}, {"Id": "<missing>", "Created": NOW,
                                               "CreatedBy": "", "Size": 0, "Comment": ""}]
    out = render_rows("", [HistoryRow(h, now=NOW) for h in history], HISTORY_TABLE,
                      HistoryRow.HEADERS).splitlines()
    assert out[0] == "IMAGE          CREATED                  CREATED BY                       " \
                     "               SIZE      COMMENT"
    assert out[1] == "cccccccccccc   About a minute ago       /bin/sh -c #(nop) ADD file:01234" \
                     "56789abcdef0…   1.99MB    Imported from -"
    assert out[2].startswith("<missing>      Less than a second")
