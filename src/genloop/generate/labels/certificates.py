"""A throw-away CA + leaf certificate chain for trying C2PA signing. NOT for production.

C2PA signatures carry an X.509 chain; a reader trusts a manifest when that chain ends at
an anchor it knows (the C2PA trust list, or anchors configured locally). A real deployment
buys a leaf certificate from a CA on that list and keeps its key in an HSM or a KMS.
For tests, demos and a first try there is nothing to buy, so this module makes:

    ca.pem / ca.key       a self-made root CA  (basicConstraints CA:TRUE, keyCertSign)
    signer.pem            leaf certificate + CA certificate (the chain C2PA embeds)
    signer.key            the leaf's private key (PKCS#8 PEM, unencrypted)

The leaf follows the C2PA certificate profile (C2PA 2.x §14.5.1): version 3,
digitalSignature key usage, an extended key usage C2PA accepts (emailProtection and
documentSigning), not a CA, subject and authority key identifiers. A manifest signed with
it validates cryptographically everywhere but is reported `signingCredential.untrusted`
by any reader that has not been given `ca.pem` as a trust anchor — that is the point:
nobody but you trusts a chain you made yourself.

Key types: "ed25519" (C2PA alg Ed25519) or "p256" (ECDSA P-256, C2PA alg ES256).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genloop.errors import GenloopError, MissingDependencyError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as error:  # pragma: no cover - the provenance extra brings it
    raise MissingDependencyError(
        "making a test certificate chain needs the cryptography package",
        hint="pip install 'genloop[provenance]'",
    ) from error

KeyType = Literal["ed25519", "p256"]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

# id-kp-documentSigning (RFC 9336); C2PA lists it beside emailProtection.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


@dataclass(frozen=True)
class SigningChain:
    """Paths of the files `make_test_chain` wrote."""

    ca_certificate: Path
    ca_key: Path
    certificate: Path
    """Leaf + CA, PEM: pass as `certificate=` to `sign_c2pa`."""
    key: Path
    """Leaf private key, PEM: pass as `key=` to `sign_c2pa`."""


def make_test_chain(
    directory: Path, *, key_type: KeyType = "ed25519", organisation: str = "genloop test"
) -> SigningChain:
    """Write a self-made CA and a C2PA-profile leaf signed by it into `directory`. NOT for production.

    Readers report manifests signed with it as untrusted unless given `ca.pem` as a trust anchor
    (`read_c2pa(..., trust_anchors=ca.pem)`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key(key_type)
    ca_name = _name(f"{organisation} root CA (NOT FOR PRODUCTION)", organisation)
    ca_certificate = _ca_certificate(ca_key, ca_name)
    leaf_key = _new_key(key_type)
    leaf_certificate = _leaf_certificate(leaf_key, ca_key, ca_certificate, organisation)

    chain = SigningChain(
        ca_certificate=directory / "ca.pem",
        ca_key=directory / "ca.key",
        certificate=directory / "signer.pem",
        key=directory / "signer.key",
    )
    chain.ca_certificate.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    chain.ca_key.write_bytes(_private_pem(ca_key))
    chain.certificate.write_bytes(
        leaf_certificate.public_bytes(serialization.Encoding.PEM)
        + ca_certificate.public_bytes(serialization.Encoding.PEM)
    )
    chain.key.write_bytes(_private_pem(leaf_key))
    for secret in (chain.ca_key, chain.key):
        secret.chmod(0o600)
    return chain


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise GenloopError(f"unknown key type {key_type!r} for a test chain", hint="use 'ed25519' or 'p256'")


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        ]
    )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519 signs with its own hash; x509 wants algorithm=None for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=365)


def _ca_certificate(key: PrivateKey, name: x509.Name) -> x509.Certificate:
    not_before, not_after = _validity()
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )


def _leaf_certificate(
    key: PrivateKey, ca_key: PrivateKey, ca_certificate: x509.Certificate, organisation: str
) -> x509.Certificate:
    not_before, not_after = _validity()
    public = key.public_key()
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"{organisation} C2PA signer (NOT FOR PRODUCTION)", organisation))
        .issuer_name(ca_certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, _hash_for(ca_key))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
