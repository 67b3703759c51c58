"""The cluster's certificate authority and the API server's serving certificate.

Files under `<state_dir>/pki/` as kubeadm names them: ca.crt, ca.key, apiserver.crt,
apiserver.key, and the kubeconfig user's client certificate admin.crt, admin.key (keys 0600).
A state directory that already holds certificates that are still valid (and, for the serving
one, cover the names) keeps them, so a kubeconfig written earlier stays good.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names in-cluster clients and kubectl reach the API server by, besides the host.
API_SERVER_NAMES = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
CA_NAME = "gyre-local-ca"
# The kubeconfig user, as kind's kubernetes-admin: a cluster administrator by its group.
ADMIN_USER = "local-admin"
ADMIN_GROUP = "system:masters"
# kubeadm's lifetimes: ten years for the CA, one for the certificates it signs.
_CA_LIFETIME = timedelta(days=3650)
_LEAF_LIFETIME = timedelta(days=365)
# A certificate this close to its end is replaced rather than reused.
_RENEW_BEFORE = timedelta(days=1)
_BACKDATE = timedelta(minutes=5)

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Where the cluster's CA and the API server's certificate and key are."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (PEM)."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (PEM)."""
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        """The API server's serving certificate (PEM)."""
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        """The API server's private key (PEM)."""
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        """The kubeconfig user's client certificate (PEM)."""
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        """The kubeconfig user's private key (PEM)."""
        return self.directory / "admin.key"

    def ca_pem(self) -> str:
        """The CA certificate as PEM text (what kube-root-ca.crt and kubeconfigs carry)."""
        return self.ca_cert.read_text()

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the serving certificate and accepting (not
        requiring) client certificates of this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_cert))
        context.load_cert_chain(self.serving_cert, self.serving_key)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context that trusts this CA only (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def subject_names(hosts: Iterable[str]) -> list[str]:
    """The serving certificate's names: API_SERVER_NAMES and the given hosts, once each."""
    return list(dict.fromkeys([*API_SERVER_NAMES, *hosts]))


def ensure_pki(directory: Path, hosts: Iterable[str], now: datetime | None = None) -> Pki:
    """The CA, serving and admin certificates in directory, reused when valid at `now` (the
    serving one for `subject_names(hosts)`), else created (a new CA only when the old one is
    unusable)."""
    now = now or datetime.now(UTC)
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = _load(pki.ca_cert, pki.ca_key)
    if ca is None or not _current(ca[0], now):
        ca = _new_ca(now)
        _store(pki.ca_cert, pki.ca_key, *ca)
    serving = _Leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        tuple(subject_names(hosts)),
    )
    admin = _Leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        (),
    )
    for leaf, cert_path, key_path in (
        (serving, pki.serving_cert, pki.serving_key),
        (admin, pki.admin_cert, pki.admin_key),
    ):
        stored = _load(cert_path, key_path)
        if stored is None or not _issued(stored[0], ca[0], leaf, now):
            _store(cert_path, key_path, *_new_leaf(ca, leaf, now))
    return pki


@dataclass(frozen=True)
class _Leaf:
    """What a certificate signed by the CA must say: subject, usage and names."""

    subject: x509.Name
    usage: x509.ObjectIdentifier
    names: tuple[str, ...]


def _issued(cert: x509.Certificate, ca: x509.Certificate, leaf: _Leaf, now: datetime) -> bool:
    """Whether cert is current, was issued by ca for leaf's subject and covers its names."""
    if not _current(cert, now) or cert.issuer != ca.subject or cert.subject != leaf.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if not leaf.names:
        return True
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return set(_alternative_names(leaf.names)) <= set(extension.value)


def _current(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc - _RENEW_BEFORE


def _alternative_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """IP addresses as IPAddress entries, everything else as DNSName."""
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _new_ca(now: datetime) -> tuple[x509.Certificate, _Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        _builder(subject, subject, key, now, _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(
    ca: tuple[x509.Certificate, _Key], leaf: _Leaf, now: datetime
) -> tuple[x509.Certificate, _Key]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    builder = (
        _builder(leaf.subject, ca_cert.subject, key, now, _LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([leaf.usage]), critical=False)
        .add_extension(authority, critical=False)
    )
    if leaf.names:
        alternative = x509.SubjectAlternativeName(_alternative_names(leaf.names))
        builder = builder.add_extension(alternative, critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _builder(
    subject: x509.Name, issuer: x509.Name, key: _Key, now: datetime, lifetime: timedelta
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _load(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, _Key] | None:
    """A stored certificate and its EC key, or None when missing, unreadable or mismatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _store(cert_path: Path, key_path: Path, cert: x509.Certificate, key: _Key) -> None:
    """Write the key (0600, never readable by others even briefly) and the certificate."""
    key_path.unlink(missing_ok=True)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
