"""The PersistentVolume controller with a directory provisioner: every claim of an existing
StorageClass is bound at once (volumeBindingMode Immediate) to an available PersistentVolume
that fits it, else to a new PV `pvc-<claim uid>` whose hostPath is the claim's directory;
a released PV is deleted with its directory (reclaim policy Delete) or kept Released. And the
PVC and PV protection controllers, which hold deleted claims and volumes while in use."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.controllers.events import EventRecorder
from gyre_local.controllers.objects import is_deleting, object_reference, pod_terminal
from gyre_local.controllers.reconciler import Controller, Key
from gyre_local.quantities import parse_quantity
from gyre_local.store.builtins import STORAGE_PROTECTION_FINALIZERS
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

PV_PROTECTION = STORAGE_PROTECTION_FINALIZERS["PersistentVolume"]
PVC_PROTECTION = STORAGE_PROTECTION_FINALIZERS["PersistentVolumeClaim"]
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
STORAGE_GROUP = "storage.k8s.io"
# How often a claim that cannot be bound is looked at again (the controller's resync).
PENDING_RECHECK = 15.0

ClaimDirectory = Callable[[str, str], Path]


def claim_request(claim: dict[str, Any]) -> str:
    """The storage a claim requests (as written)."""
    resources = (claim.get("spec") or {}).get("resources") or {}
    return str((resources.get("requests") or {}).get("storage") or "0")


def claim_class(obj: dict[str, Any]) -> str:
    """The StorageClass name of a claim or volume ("" for none)."""
    return str((obj.get("spec") or {}).get("storageClassName") or "")


def fits(volume: dict[str, Any], claim: dict[str, Any]) -> bool:
    """Whether an available volume can bind a claim: same class and volume mode, every access
    mode the claim asks for, and at least the storage it requests."""
    spec, claim_spec = volume.get("spec") or {}, claim.get("spec") or {}
    return (
        claim_class(volume) == claim_class(claim)
        and spec.get("volumeMode", "Filesystem") == claim_spec.get("volumeMode", "Filesystem")
        and set(claim_spec.get("accessModes") or []) <= set(spec.get("accessModes") or [])
        and parse_quantity((spec.get("capacity") or {}).get("storage"))
        >= parse_quantity(claim_request(claim))
    )


def provisioned_volume(
    claim: dict[str, Any], storage_class: dict[str, Any], path: Path
) -> dict[str, Any]:
    """The PV a provisioner creates for a claim: `pvc-<uid>`, sized and moded as the claim
    asks, its hostPath the claim's directory, pre-bound to the claim."""
    spec = claim.get("spec") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{claim['metadata']['uid']}",
            "annotations": {PROVISIONED_BY: str(storage_class.get("provisioner", ""))},
        },
        "spec": {
            "accessModes": list(spec.get("accessModes") or []),
            "capacity": {"storage": claim_request(claim)},
            "claimRef": object_reference(claim),
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        },
    }


def _claim_of(volume: dict[str, Any]) -> list[Key]:
    """A source mapper: a PV -> the key of the claim it is (or was) bound to."""
    reference = (volume.get("spec") or {}).get("claimRef") or {}
    if not reference.get("name"):
        return []
    return [(str(reference.get("namespace") or ""), str(reference["name"]))]


class PersistentVolumeController(Controller):
    """Binds claims to volumes, provisioning a directory volume when none fits, and reclaims
    the volumes of deleted claims. `claim_directory(namespace, claim)` is where the process
    kubelet mounts a claim: the provisioned volume's hostPath."""

    resource = ("", "persistentvolumeclaims")

    def __init__(self, store: Store, claim_directory: ClaimDirectory) -> None:
        super().__init__(store)
        self.claim_directory = claim_directory
        self.events = EventRecorder(store, "persistentvolume-controller")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """PersistentVolumes, mapped to their claims; StorageClasses, to the claims naming
        them (a claim waiting for its class binds once it appears)."""
        return [
            ("", "persistentvolumes", _claim_of),
            (STORAGE_GROUP, "storageclasses", self._claims_of_class),
        ]

    def _claims_of_class(self, storage_class: dict[str, Any]) -> list[Key]:
        claims, _ = self.store.list("", "persistentvolumeclaims")
        name = storage_class["metadata"]["name"]
        return [
            (c["metadata"]["namespace"], c["metadata"]["name"])
            for c in claims
            if claim_class(c) == name and not (c.get("spec") or {}).get("volumeName")
        ]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bind the claim, or reclaim the volumes of a claim that is gone."""
        claim = self.find("", "persistentvolumeclaims", namespace, name)
        self._reclaim(namespace, name, claim)
        if claim is None or is_deleting(claim):
            return None
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            return self._check_bound(claim, str(volume_name))
        volume = self._matching_volume(claim) or self._provision(claim)
        if volume is None:
            return PENDING_RECHECK
        self._bind(claim, volume)
        return None

    def _reclaim(self, namespace: str, name: str, claim: dict[str, Any] | None) -> None:
        """Release the volumes bound to an earlier claim of this name (or to none now)."""
        uid = claim["metadata"]["uid"] if claim is not None else None
        volumes, _ = self.store.list("", "persistentvolumes")
        for volume in volumes:
            reference = (volume.get("spec") or {}).get("claimRef") or {}
            if (reference.get("namespace"), reference.get("name")) != (namespace, name):
                continue
            if reference.get("uid") in (uid, None, ""):
                continue
            self._release(volume)

    def _release(self, volume: dict[str, Any]) -> None:
        """A volume whose claim is gone is Released, then deleted with the directory of a
        provisioned one when its reclaim policy is Delete."""
        spec = volume.get("spec") or {}
        self._set_phase(volume, "Released")
        if spec.get("persistentVolumeReclaimPolicy") != "Delete" or is_deleting(volume):
            return
        path = (spec.get("hostPath") or {}).get("path")
        if path and PROVISIONED_BY in (volume["metadata"].get("annotations") or {}):
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.store.delete("", "persistentvolumes", None, volume["metadata"]["name"])
        except ApiError as error:
            if error.code != 404:
                raise

    def _check_bound(self, claim: dict[str, Any], volume_name: str) -> float | None:
        """A claim naming its volume: bind them if the volume is free, mark the claim Lost
        when its bound volume is gone."""
        volume = self.find("", "persistentvolumes", "", volume_name)
        phase = (claim.get("status") or {}).get("phase")
        if volume is None:
            if phase == "Bound":
                self._write_claim_status(claim, {"phase": "Lost"})
                self.events.warning(
                    claim,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
            return None if phase == "Bound" else PENDING_RECHECK
        reference = (volume.get("spec") or {}).get("claimRef") or {}
        if reference.get("uid") not in (None, "", claim["metadata"]["uid"]):
            return PENDING_RECHECK
        self._bind(claim, volume)
        return None

    def _matching_volume(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        """The smallest available volume that fits the claim."""
        volumes, _ = self.store.list("", "persistentvolumes")
        available = [
            v
            for v in volumes
            if not (v.get("spec") or {}).get("claimRef") and not is_deleting(v) and fits(v, claim)
        ]
        return min(
            available,
            key=lambda v: parse_quantity(
                ((v.get("spec") or {}).get("capacity") or {}).get("storage")
            ),
            default=None,
        )

    def _provision(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        """A new directory volume for the claim, or None (with the event a cluster shows)
        when the claim names no class or one that does not exist."""
        class_name = claim_class(claim)
        if not class_name:
            self.events.normal(
                claim,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            return None
        storage_class = self.find(STORAGE_GROUP, "storageclasses", "", class_name)
        if storage_class is None:
            self.events.warning(
                claim,
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{class_name}" not found',
            )
            return None
        metadata = claim["metadata"]
        path = self.claim_directory(metadata["namespace"], metadata["name"])
        path.mkdir(parents=True, exist_ok=True)
        volume = provisioned_volume(claim, storage_class, path)
        existing = self.find("", "persistentvolumes", "", volume["metadata"]["name"])
        created = existing or self.store.create("", "persistentvolumes", None, volume)
        self._annotate_provisioner(claim, str(storage_class.get("provisioner", "")))
        self.events.normal(
            claim,
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {created['metadata']['name']}",
        )
        return created

    def _annotate_provisioner(self, claim: dict[str, Any], provisioner: str) -> None:
        metadata = claim["metadata"]
        annotations = {STORAGE_PROVISIONER: provisioner, BETA_STORAGE_PROVISIONER: provisioner}
        updated = self.store.patch(
            "",
            "persistentvolumeclaims",
            metadata["namespace"],
            metadata["name"],
            {"metadata": {"annotations": annotations}},
            MERGE_PATCH,
        )
        claim["metadata"] = updated["metadata"]

    def _bind(self, claim: dict[str, Any], volume: dict[str, Any]) -> None:
        """Point volume and claim at each other, then mark both Bound (the claim with the
        volume's capacity and access modes)."""
        volume_spec = volume.get("spec") or {}
        if (volume_spec.get("claimRef") or {}).get("uid") != claim["metadata"]["uid"]:
            patch = {"spec": {"claimRef": object_reference(claim)}}
            volume = self.store.patch(
                "", "persistentvolumes", None, volume["metadata"]["name"], patch, MERGE_PATCH
            )
            volume_spec = volume["spec"]
        self._set_phase(volume, "Bound")
        metadata = claim["metadata"]
        volume_name = volume["metadata"]["name"]
        if (claim.get("spec") or {}).get("volumeName") != volume_name or (
            (metadata.get("annotations") or {}).get(BIND_COMPLETED) != "yes"
        ):
            bound_by_controller = not (claim.get("spec") or {}).get("volumeName")
            annotations = {BIND_COMPLETED: "yes"}
            if bound_by_controller:
                annotations[BOUND_BY_CONTROLLER] = "yes"
            patch = {
                "metadata": {"annotations": annotations},
                "spec": {"volumeName": volume_name},
            }
            claim = self.store.patch(
                "",
                "persistentvolumeclaims",
                metadata["namespace"],
                metadata["name"],
                patch,
                MERGE_PATCH,
            )
        self._write_claim_status(
            claim,
            {
                "phase": "Bound",
                "accessModes": list(volume_spec.get("accessModes") or []),
                "capacity": dict(volume_spec.get("capacity") or {}),
            },
        )

    def _set_phase(self, volume: dict[str, Any], phase: str) -> None:
        status = volume.get("status") or {}
        if status.get("phase") == phase:
            return
        body = {
            **volume,
            "status": {**status, "phase": phase, "lastPhaseTransitionTime": now_rfc3339()},
        }
        self.store.replace(
            "", "persistentvolumes", None, volume["metadata"]["name"], body, subresource="status"
        )

    def _write_claim_status(self, claim: dict[str, Any], status: dict[str, Any]) -> None:
        if claim.get("status") == status:
            return
        metadata = claim["metadata"]
        self.store.replace(
            "",
            "persistentvolumeclaims",
            metadata["namespace"],
            metadata["name"],
            {**claim, "status": status},
            subresource="status",
        )


def mounted_claims(pod: dict[str, Any]) -> list[Key]:
    """A source mapper: a pod -> the claims its volumes mount."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    return [
        (namespace, str(volume["persistentVolumeClaim"].get("claimName", "")))
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(volume.get("persistentVolumeClaim"), dict)
    ]


def _without(obj: dict[str, Any], finalizer: str) -> dict[str, Any]:
    """A merge patch dropping one finalizer."""
    kept = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
    return {"metadata": {"finalizers": kept or None}}


class ClaimProtectionController(Controller):
    """The PVC protection controller: a deleted claim keeps its `kubernetes.io/pvc-protection`
    finalizer while a pod that has not finished mounts it."""

    resource = ("", "persistentvolumeclaims")

    def sources(self) -> Iterable[tuple[str, str, Any]]:
        """Pods, mapped to the claims they mount."""
        return [("", "pods", mounted_claims)]

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Lift the finalizer of a deleted claim no running pod uses."""
        claim = self.primary(namespace, name)
        if claim is None:
            return None
        finalizers = claim["metadata"].get("finalizers") or []
        if not is_deleting(claim) or PVC_PROTECTION not in finalizers:
            return None
        pods, _ = self.store.list("", "pods", namespace)
        if any((namespace, name) in mounted_claims(p) and not pod_terminal(p) for p in pods):
            return None
        self.store.patch(
            "",
            "persistentvolumeclaims",
            namespace,
            name,
            _without(claim, PVC_PROTECTION),
            MERGE_PATCH,
        )
        return None


class VolumeProtectionController(Controller):
    """The PV protection controller: a deleted volume keeps its `kubernetes.io/pv-protection`
    finalizer while it is Bound to a claim."""

    resource = ("", "persistentvolumes")

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Lift the finalizer of a deleted volume that is not Bound."""
        volume = self.primary(namespace, name)
        if volume is None:
            return None
        finalizers = volume["metadata"].get("finalizers") or []
        bound = (volume.get("status") or {}).get("phase") == "Bound"
        if is_deleting(volume) and PV_PROTECTION in finalizers and not bound:
            self.store.patch(
                "", "persistentvolumes", None, name, _without(volume, PV_PROTECTION), MERGE_PATCH
            )
        return None
