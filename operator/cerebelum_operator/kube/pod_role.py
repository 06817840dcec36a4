"""The operator labels its own pod `cerebelum.io/role: leader` or `standby`; the gRPC Service selects `leader`.

This is how HA services on Kubernetes route to their active replica (Vault's `vault-active`
label, Patroni's `role` label): readiness says "this replica is healthy", so a standby waiting
for the Lease is Ready and rollouts, `helm --wait` and PodDisruptionBudgets work with two
replicas, while the Service finds the one instance that dispatches by a label only that instance
carries. Each change is a JSON merge patch of the pod's labels (nothing else is touched).

On the way up a label that cannot be written is retried until it is, and said loudly: a leader
the Service cannot select serves nobody, and a pod still labelled `leader` from a previous run
must not become Ready. An API server that refuses outright (403, 404: no permission, or no such
pod) is not retried: the error reaches the caller, as any refusal of the operator does. On the
way down the label is best effort: one bounded attempt, because the pod is going away anyway.
Retries and the attempt's bound run on the injected clock, so the tests move a fake one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from ..runtime import Clock, SystemClock
from ..runtime.deadline import wait_for
from .names import namespace_name, object_name

__all__ = ["LEADER", "ROLE_LABEL", "STANDBY", "PodRoleLabeler", "Role"]

log = logging.getLogger(__name__)

ROLE_LABEL = "cerebelum.io/role"
Role = Literal["leader", "standby"]
LEADER: Role = "leader"
STANDBY: Role = "standby"

# Answers worth retrying: the API server is busy, overloaded or failing, not refusing.
_TRANSIENT = frozenset({409, 429, 500, 502, 503, 504})


def _transient(error: Exception) -> bool:
    if isinstance(error, ApiError):
        return error.status.code in _TRANSIENT
    return True  # connection refused or reset, a timeout: the API server may come back


class PodRoleLabeler:
    """Writes `cerebelum.io/role` on one pod (this process's own), through the operator's client."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        namespace: str,
        name: str,
        on_write: Callable[[], None] | None = None,
        retry_every_s: float = 2.0,
        attempt_timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace_name(namespace)
        self.name = object_name(name, field="the pod name (--identity, POD_NAME)")
        self.on_write = on_write
        self.retry_every_s = retry_every_s
        self.attempt_timeout_s = attempt_timeout_s
        self.clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"pod {self.namespace}/{self.name}"

    async def label(self, role: Role) -> None:
        """One attempt, bounded by `attempt_timeout_s`; raises what the API server (or the network) said."""
        if self.on_write is not None:
            self.on_write()
        patch = {"metadata": {"labels": {ROLE_LABEL: role}}}
        await wait_for(
            self.client.patch(Pod, self.name, patch, namespace=self.namespace, patch_type=PatchType.MERGE),
            within=self.attempt_timeout_s,
            clock=self.clock,
        )

    async def ensure(self, role: Role, *, until: asyncio.Event | None = None) -> bool:
        """Label until it is written (True) or `until` is set (False); a refusal (403, 404...) raises.

        The first failure is an ERROR naming what it costs; later ones are warnings, and the
        success after them says how long it took.
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.label(role)
            except Exception as error:
                if not _transient(error):
                    log.error(
                        "cannot label %r %s=%s: %s (the pod is named by --identity/POD_NAME in"
                        " --lease-namespace/POD_NAMESPACE, and the operator needs get and patch on pods there)",
                        self,
                        ROLE_LABEL,
                        role,
                        error,
                    )
                    raise
                if attempts == 1:
                    log.error(
                        "could not label %r %s=%s (%r); the gRPC Service sends workers to the pod labelled"
                        " %s=leader, so until this succeeds %s; retrying every %ss",
                        self,
                        ROLE_LABEL,
                        role,
                        error,
                        ROLE_LABEL,
                        "no worker reaches this leader" if role == LEADER else "this standby stays not Ready",
                        self.retry_every_s,
                    )
                else:
                    log.warning("labelling %r %s=%s failed again (%r); retrying", self, ROLE_LABEL, role, error)
                if until is None:
                    await self.clock.sleep(self.retry_every_s)
                else:
                    try:
                        await wait_for(until.wait(), within=self.retry_every_s, clock=self.clock)
                    except TimeoutError:
                        pass
                    else:
                        return False
                continue
            if attempts > 1:
                log.info("labelled %r %s=%s after %d attempts", self, ROLE_LABEL, role, attempts)
            else:
                log.info("labelled %r %s=%s", self, ROLE_LABEL, role)
            return True

    async def try_label(self, role: Role) -> bool:
        """Best effort, for the way down: one bounded attempt; a failure is a warning, never raised."""
        try:
            await self.label(role)
        except Exception as error:
            log.warning("could not label %r %s=%s on the way down: %r", self, ROLE_LABEL, role, error)
            return False
        log.info("labelled %r %s=%s", self, ROLE_LABEL, role)
        return True
