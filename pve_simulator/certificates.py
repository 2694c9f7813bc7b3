"""Certificates for the simulator, generated fresh at every start.

A real PVE node serves a certificate signed by its cluster's own CA, which no
client trusts out of the box; the simulator serves either a self-signed
certificate (the default: nothing trusts it, the case an operator meets
first) or one signed by a CA generated alongside it, whose PEM can be handed
to ``PROXMOX_CA_BUNDLE`` to test private-CA trust.

ECDSA P-256 keys rather than PVE's RSA 2048: they take microseconds to make,
and the suite makes many; nothing in the client depends on the key type.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names a loopback client may use to reach the simulator.
LOOPBACK_DNS_NAMES = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1", "::1")

_LEAF_LIFETIME = datetime.timedelta(days=2 * 365)  # PVE's node certificates: 2 years
_CA_LIFETIME = datetime.timedelta(days=10 * 365)
_BACKDATE = datetime.timedelta(days=1)  # tolerate a client clock slightly behind


@dataclass(frozen=True)
class ServerCertificate:
    """What the simulator serves: its certificate, key, and the CA (if any)
    that signed the certificate."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, ``AB:CD:…`` as PVE shows it."""
        return sha256_fingerprint(self.cert_pem)

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context serving this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain only reads files; the key is on disk only for the
        # moment it takes to load it.
        with tempfile.TemporaryDirectory(prefix="pve-simulator-") as directory:
            cert_path = Path(directory) / "cert.pem"
            key_path = Path(directory) / "key.pem"
            cert_path.write_bytes(self.cert_pem)
            key_path.touch(mode=0o600)
            key_path.write_bytes(self.key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context


def sha256_fingerprint(cert_pem: bytes) -> str:
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _loopback_names(addresses: Iterable[str] = ()) -> x509.SubjectAlternativeName:
    ips = list(LOOPBACK_IPS)
    for address in addresses:
        with contextlib.suppress(ValueError):
            if str(ipaddress.ip_address(address)) not in [
                str(ipaddress.ip_address(i)) for i in ips
            ]:
                ips.append(address)
    return x509.SubjectAlternativeName(
        [x509.DNSName(name) for name in LOOPBACK_DNS_NAMES]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    )


def _leaf(
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    addresses: Iterable[str] = (),
) -> x509.Certificate:
    subject = _name("localhost", "PVE simulator")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LEAF_LIFETIME)
        .add_extension(_loopback_names(addresses), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed_certificate(addresses: Iterable[str] = ()) -> ServerCertificate:
    """A certificate for localhost, 127.0.0.1, ::1 and ``addresses`` (a
    node's own loopback address, as PVE puts a node's IPs in its
    certificate) that signs itself."""
    now = datetime.datetime.now(datetime.UTC)
    key = _new_key()
    cert = _leaf(key, issuer=None, issuer_key=key, now=now, addresses=addresses)
    return ServerCertificate(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def ca_signed_certificate(addresses: Iterable[str] = ()) -> ServerCertificate:
    """A fresh CA (as PVE's "PVE Cluster Manager CA") and a loopback
    certificate it signed; ``ca_pem`` is what a client must trust."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _new_key()
    ca_name = _name("Proxmox Virtual Environment (simulator)", "PVE Cluster Manager CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = _new_key()
    cert = _leaf(key, issuer=ca_name, issuer_key=ca_key, now=now, addresses=addresses)
    return ServerCertificate(
        cert.public_bytes(serialization.Encoding.PEM),
        _key_pem(key),
        ca_cert.public_bytes(serialization.Encoding.PEM),
    )
