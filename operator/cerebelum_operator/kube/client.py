"""The few Kubernetes API calls the operator makes outside kopf's handlers, over lightkube.

Kept in one place so every write is counted (`writes`) and rate-limited by the callers that batch
them; kopf makes its own calls for watching and for the handlers' patches.

Events go through the core (v1) Events API, as client-go's `record` recorder sends them, not
events.k8s.io: `kubectl describe` sorts an object's Events by `lastTimestamp` alone (whole
seconds), which events.k8s.io refuses to set, so Events written there only with `eventTime`
came out in the API server's list order, which is name order, which `generateName` made random.
Here every Event carries first/last timestamps and a count of 1, and its name is the object's
name and a hex microsecond stamp that grows with each Event: within one second (a tie for
kubectl's sort, which leaves an already sorted list as it is) name order is the order they happened.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from lightkube import ALL_NS, AsyncClient, KubeConfig
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, SERVICE_ACCOUNT
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event
from lightkube.types import PatchType

from ..runtime import Clock, SystemClock
from .names import namespace_name, object_name
from .resources import API_VERSION, GROUP, VERSION

__all__ = [
    "Approval",
    "Execution",
    "KubeApi",
    "NoKubeConfig",
    "ObjectRef",
    "Schedule",
    "Signal",
    "Workflow",
    "event_name",
    "is_not_found",
    "load_kube_config",
]

log = logging.getLogger(__name__)

JSON = Any

Workflow = create_namespaced_resource(GROUP, VERSION, "Workflow", "workflows")
Execution = create_namespaced_resource(GROUP, VERSION, "Execution", "executions")
Approval = create_namespaced_resource(GROUP, VERSION, "Approval", "approvals")
Signal = create_namespaced_resource(GROUP, VERSION, "Signal", "signals")
Schedule = create_namespaced_resource(GROUP, VERSION, "Schedule", "schedules")

_RESOURCES: dict[str, Any] = {
    "Execution": Execution,
    "Approval": Approval,
    "Workflow": Workflow,
    "Signal": Signal,
    "Schedule": Schedule,
}

CONTROLLER_NAME = "cerebelum.io/operator"
_MAX_NAME = 253  # a DNS-1123 subdomain
_NOTE_BYTES = 1024  # the API server's limit on an Event's note, in bytes


def event_name(object_name: str, stamp_us: int) -> str:
    """`<object>.<hex stamp>`, as client-go names Events: a later stamp sorts later by name, since
    microseconds since the epoch have 13 hex digits from 1979 to 2112."""
    suffix = f".{stamp_us:x}"
    return object_name[: _MAX_NAME - len(suffix)].rstrip("-.") + suffix


class NoKubeConfig(Exception):
    """No way to reach the Kubernetes API: the message says where the operator looked."""


def load_kube_config(
    *, service_account: str = SERVICE_ACCOUNT, default_kubeconfig: str = DEFAULT_KUBECONFIG
) -> KubeConfig:
    """lightkube's order (the pod's ServiceAccount, then $KUBECONFIG, then ~/.kube/config), with one
    error naming every place it looked instead of a traceback about the last one."""
    token = Path(service_account) / "token"
    if token.is_file() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return KubeConfig.from_service_account(service_account=service_account)
        except (ConfigError, OSError, KeyError) as error:
            raise NoKubeConfig(f"the in-cluster service account in {service_account} is unusable: {error}") from None
    chosen = os.environ.get("KUBECONFIG")
    if chosen and os.pathsep in chosen:
        raise NoKubeConfig(f"KUBECONFIG={chosen} lists several files; the operator reads one: name one file")
    path = Path(chosen or default_kubeconfig).expanduser()
    if not path.is_file():
        pod = f"no {token}" if not token.is_file() else "KUBERNETES_SERVICE_HOST is not set"
        where = f"KUBECONFIG={chosen} does not exist" if chosen else f"KUBECONFIG is not set and {path} does not exist"
        raise NoKubeConfig(f"cannot find a Kubernetes configuration: not in a pod ({pod}), {where}")
    try:
        config = KubeConfig.from_file(path)
        config.get()  # a file with no current context fails here, not in the client
    except (ConfigError, OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        raise NoKubeConfig(f"the kubeconfig {path} is unusable: {_problem(error)}") from None
    return config


def _problem(error: Exception) -> str:
    """One line about what is wrong in a kubeconfig."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"not YAML: {error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(error, KeyError):
        return f"it has no {error}"
    return " ".join(str(error).split()) or type(error).__name__


def is_not_found(error: ApiError) -> bool:
    return error.status.code == 404


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    """Enough of an object to patch it and to point an Event at it."""

    kind: str
    namespace: str
    name: str
    uid: str

    def __repr__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


class KubeApi:
    def __init__(
        self,
        client: AsyncClient,
        *,
        instance: str | None = None,
        on_write: Callable[[str], None] | None = None,
        on_read: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`on_write`: told the kind of each write (status, events, labels...); `on_read`: the kind of
        each object read by name (Workflow, Execution...)."""
        self.client = client
        self.instance = instance or socket.gethostname()
        self._on_write = on_write
        self._on_read = on_read
        self._clock: Clock = clock or SystemClock()
        self._last_event_us = 0

    def _count(self, kind: str) -> None:
        if self._on_write is not None:
            self._on_write(kind)

    @classmethod
    def from_env(
        cls,
        *,
        instance: str | None = None,
        on_write: Callable[[str], None] | None = None,
        on_read: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        service_account: str = SERVICE_ACCOUNT,
        default_kubeconfig: str = DEFAULT_KUBECONFIG,
    ) -> KubeApi:
        """In a pod: the mounted ServiceAccount; elsewhere: $KUBECONFIG or ~/.kube/config.

        Raises `NoKubeConfig`, saying where it looked, when none of them gives a configuration.
        """
        config = load_kube_config(service_account=service_account, default_kubeconfig=default_kubeconfig)
        client = AsyncClient(config=config, field_manager="cerebelum-operator")
        return cls(client, instance=instance, on_write=on_write, on_read=on_read, clock=clock)

    async def close(self) -> None:
        await self.client.close()

    async def get(self, resource: type[Any], namespace: str, name: str) -> dict[str, JSON] | None:
        """The object, or None; `InvalidName` for a name that is not one (it would become a URL path)."""
        name = object_name(name, field="name")
        namespace = namespace_name(namespace)
        if self._on_read is not None:
            self._on_read(resource._api_info.resource.kind)
        try:
            obj = await self.client.get(resource, name, namespace=namespace)
        except ApiError as error:
            if is_not_found(error):
                return None
            raise
        result: dict[str, JSON] = obj.to_dict()
        return result

    async def create(self, resource: type[Any], body: dict[str, JSON]) -> dict[str, JSON] | None:
        """Create the object `body` describes; None when an object of that name exists already."""
        meta = body["metadata"]
        object_name(meta["name"], field="name")
        namespace_name(meta["namespace"])
        self._count("objects")
        try:
            created = await self.client.create(resource(body))  # namespaced by its metadata
        except ApiError as error:
            if error.status.code == 409:
                return None
            raise
        result: dict[str, JSON] = created.to_dict()
        return result

    async def list_all(self, resource: type[Any]) -> list[dict[str, JSON]]:
        """Every object of a cluster-scoped kind (e.g. the admission policies), as plain dicts."""
        return [obj.to_dict() async for obj in self.client.list(resource)]

    async def list_selected(
        self,
        resource: type[Any],
        namespace: str,
        *,
        fields: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """(name, uid) of each object of `resource` in `namespace` that the API server selects by
        `fields` (those a CRD declares selectable, e.g. ``spec.execution``) and `labels`."""
        namespace = namespace_name(namespace)
        by_field: dict[str, Any] | None = None if fields is None else dict(fields)
        by_label: dict[str, Any] | None = None if labels is None else dict(labels)
        listed = self.client.list(resource, namespace=namespace, fields=by_field, labels=by_label)
        return [(str(obj.metadata.name), str(obj.metadata.uid)) async for obj in listed]

    async def list_labelled(
        self, resource: type[Any], namespaces: tuple[str, ...], *, labels: dict[str, Any], page: int = 500
    ) -> AsyncIterator[dict[str, JSON]]:
        """Each object of `resource` in `namespaces` (none: all) that `labels` select, listed `page`
        objects a request: memory holds one page, never the whole list."""
        for namespace in namespaces or (ALL_NS,):
            where = namespace if namespace == ALL_NS else namespace_name(namespace)
            async for obj in self.client.list(resource, namespace=where, labels=labels, chunk_size=page):
                result: dict[str, JSON] = obj.to_dict()
                yield result

    async def mark(
        self,
        ref: ObjectRef,
        *,
        labels: dict[str, str | None] | None = None,
        annotations: dict[str, str | None] | None = None,
        attempts: int = 5,
    ) -> bool:
        """Set (None: remove) labels and annotations of the object, in one patch, while it is still the
        one with `ref.uid` (`_patch_metadata`); False when it is not, or is gone."""

        def change(meta: dict[str, JSON]) -> dict[str, JSON]:
            return {**({"labels": labels} if labels else {}), **({"annotations": annotations} if annotations else {})}

        return await self._patch_metadata(ref, change, counted="labels", attempts=attempts, doing="being labelled")

    async def add_finalizer(self, ref: ObjectRef, finalizer: str, *, attempts: int = 5) -> bool:
        """Put `finalizer` on the object while it is still the one with `ref.uid` and not being deleted
        (`_patch_metadata`); False when it is not, or is gone."""

        def change(meta: dict[str, JSON]) -> dict[str, JSON] | None:
            if meta.get("deletionTimestamp"):
                return None  # the API server adds no finalizer to an object being deleted
            finalizers = list(meta.get("finalizers") or [])
            return {} if finalizer in finalizers else {"finalizers": [*finalizers, finalizer]}

        return await self._patch_metadata(
            ref, change, counted="finalizers", attempts=attempts, doing="its finalizer was being added"
        )

    async def _patch_metadata(
        self,
        ref: ObjectRef,
        change_of: Callable[[dict[str, JSON]], dict[str, JSON] | None],
        *,
        counted: str,
        attempts: int,
        doing: str,
    ) -> bool:
        """Merge-patch the metadata `change_of` makes of the object's as just read (None: refuse, so
        False; empty: nothing to do, so True), its resourceVersion a precondition, read again on a
        conflict; False when the object is gone or is no longer the one with `ref.uid`."""
        resource = _RESOURCES[ref.kind]
        for _ in range(attempts):
            current = await self.get(resource, ref.namespace, ref.name)
            if current is None or str(current["metadata"].get("uid")) != ref.uid:
                return False
            meta = current["metadata"]
            change = change_of(meta)
            if not change:
                return change is not None
            self._count(counted)
            body = {"metadata": {**change, "resourceVersion": meta["resourceVersion"]}}
            try:
                await self.client.patch(resource, ref.name, body, namespace=ref.namespace, patch_type=PatchType.MERGE)
            except ApiError as error:
                if error.status.code == 409:
                    continue  # changed since it was read: read it again
                if is_not_found(error):
                    return False
                raise
            return True
        raise RuntimeError(f"{ref!r} kept changing while {doing}")

    async def delete(self, resource: type[Any], namespace: str, name: str, *, uid: str) -> bool:
        """Delete the object if it is still the one with `uid`; False when it is gone or is a namesake
        made since (the API server checks the uid: a precondition, so no read races the delete)."""
        name = object_name(name, field="name")
        namespace = namespace_name(namespace)
        self._count("deletes")
        # lightkube's delete sends no body, and preconditions travel only in one (DeleteOptions).
        generic = self.client._client
        request = generic.prepare_request("delete", res=resource, name=name, namespace=namespace)
        request.data = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        response = await generic.send(generic.build_adapter_request(request))  # type: ignore[no-untyped-call]
        try:
            generic.handle_response("delete", response, request)
        except ApiError as error:
            if error.status.code in (404, 409):
                return False
            raise
        return True

    async def patch_status(self, ref: ObjectRef, status: dict[str, JSON]) -> str | None:
        """Merge `status` into the object's; the resourceVersion the write left it at."""
        resource = _RESOURCES[ref.kind]
        name = object_name(ref.name, field="name")
        namespace = namespace_name(ref.namespace)
        self._count("status")
        patched = await self.client.patch(
            resource.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        metadata = getattr(patched, "metadata", None)
        version = getattr(metadata, "resourceVersion", None)
        return version if isinstance(version, str) else None

    def _event_stamp_us(self) -> int:
        """Now in microseconds, and later than the last Event's even when the clock has not moved."""
        self._last_event_us = max(round(self._clock.now_s() * 1_000_000), self._last_event_us + 1)
        return self._last_event_us

    async def post_event(self, ref: ObjectRef, *, type_: str, reason: str, note: str, action: str) -> None:
        """A Kubernetes Event about `ref`; losing one is logged, never fatal."""
        self._count("events")
        for _ in range(3):  # a name taken (another instance, the same microsecond): the next one
            stamp_us = self._event_stamp_us()
            at = datetime.fromtimestamp(stamp_us // 1_000_000, tz=UTC).replace(microsecond=stamp_us % 1_000_000)
            event = Event(
                metadata=ObjectMeta(name=event_name(ref.name, stamp_us), namespace=ref.namespace),
                involvedObject=ObjectReference(
                    apiVersion=API_VERSION, kind=ref.kind, name=ref.name, namespace=ref.namespace, uid=ref.uid
                ),
                type=type_,
                reason=reason,
                message=_cut_utf8(note, _NOTE_BYTES),
                action=action,
                eventTime=at,
                # What `kubectl describe` sorts on and counts; the API server keeps whole seconds.
                firstTimestamp=at,
                lastTimestamp=at,
                count=1,
                reportingComponent=CONTROLLER_NAME,
                reportingInstance=self.instance[:128],
            )
            try:
                await self.client.create(event)
                return
            except ApiError as error:
                if error.status.code != 409:
                    log.warning("could not post event %s on %r: %s", reason, ref, error)
                    return
        log.warning("could not post event %s on %r: its names were taken", reason, ref)


def _cut_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8 (the API server counts bytes), ending in "…" when cut."""
    if len(text.encode()) <= limit:
        return text
    return text.encode()[: limit - len("…".encode())].decode(errors="ignore") + "…"
