"""Where the SDK finds its token and TLS settings, and that a rotated token file is read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cerebelum.connection import TlsSettings, TokenSource, resolve_tls, resolve_token_source


def test_a_token_file_is_read_again_when_the_kubelet_rotates_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    source = TokenSource(path=str(path))
    assert source.metadata() == (("authorization", "Bearer first-token"),)
    path.write_text("second-token-longer\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert source.token() == "second-token-longer"


def test_a_vanished_token_file_keeps_the_last_token_it_read(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("kept")
    source = TokenSource(path=str(path))
    assert source.token() == "kept"
    path.unlink()
    assert source.token() == "kept"


def test_a_token_file_that_never_existed_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"cannot read the token file .*missing"):
        TokenSource(path=str(tmp_path / "missing")).token()


def test_an_explicit_token_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CEREBELUM_TOKEN", "from-env")
    monkeypatch.setenv("CEREBELUM_TOKEN_FILE", str(tmp_path / "file"))
    explicit = resolve_token_source("explicit")
    from_env = resolve_token_source()
    assert explicit is not None and explicit.token() == "explicit"
    assert from_env is not None and from_env.token() == "from-env"
    monkeypatch.delenv("CEREBELUM_TOKEN")
    from_file = resolve_token_source()
    assert from_file is not None and from_file.path == str(tmp_path / "file")


def test_tls_is_on_when_a_ca_is_named_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEREBELUM_TLS", raising=False)
    monkeypatch.delenv("CEREBELUM_TLS_CA", raising=False)
    assert resolve_tls() is None
    monkeypatch.setenv("CEREBELUM_TLS_CA", "/etc/ca.pem")
    monkeypatch.setenv("CEREBELUM_TLS_SERVER_NAME", "engine.local")
    assert resolve_tls() == TlsSettings(ca_file="/etc/ca.pem", server_name="engine.local")
    assert resolve_tls(False) is None


def test_a_list_names_one_engine_each_with_or_without_grpcs_scheme_and_a_dns_name_is_resolved_by_the_worker() -> None:
    from cerebelum.config import channel_options, dns_target, engine_addresses

    assert engine_addresses("ipv4:10.0.0.1:7450,10.0.0.2:7450") == ("10.0.0.1:7450", "10.0.0.2:7450")
    assert engine_addresses("a:7450, b:7450,a:7450") == ("a:7450", "b:7450")
    assert engine_addresses("dns:///cerebelum-replicas.ops.svc:7450") == ("dns:///cerebelum-replicas.ops.svc:7450",)
    assert dns_target("dns:///cerebelum-replicas.ops.svc:7450") == ("cerebelum-replicas.ops.svc", 7450)
    assert dns_target("dns://8.8.8.8/replicas:7450") == ("replicas", 7450)
    assert dns_target("replicas:7450") is None
    with pytest.raises(ValueError, match="dns:///HOST:PORT"):
        dns_target("dns:///replicas")
    # A client's channel to a name spreads its calls over every replica (any of them forwards).
    assert ("grpc.lb_policy_name", "round_robin") in channel_options("dns:///cerebelum-replicas.ops.svc:7450")
    assert not any(name == "grpc.lb_policy_name" for name, _ in channel_options("a:7450"))
