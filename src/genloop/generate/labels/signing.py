"""Signing keys for the `ReservedCode1` signature of the GB 45438 label: Ed25519 or SM2.

Key files (the workspace default is `.genloop/keys/aigc-<algorithm>.key`, created on
first use, mode 0600, with its public key beside it as `.pub`)::

    ed25519   private: PKCS#8 PEM        public: SubjectPublicKeyInfo PEM
    sm2       private: 64 hex digits     public: "04" + x + y, 130 hex digits

SM2 signs SM3(Z ‖ message) (GB/T 32918.2, the default user id "1234567812345678") with
`gmssl` (pure Python). Its nonce is derived from the key and the message (HMAC-SHA256,
in the spirit of RFC 6979) so that the same item gives the same bytes, like Ed25519.
A key id (`kid`: 16 hex digits of SHA-256 of the raw public key) names the key in the
label so that `genloop verify` can pick the right public key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genloop.errors import ConfigError, MissingDependencyError

Algorithm = Literal["ed25519", "sm2"]
ALGORITHMS: tuple[Algorithm, ...] = ("ed25519", "sm2")
_SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    algorithm: Algorithm
    raw: bytes
    """Ed25519: 32 bytes; SM2: 64 bytes (x ‖ y)."""
    source: str = ""

    @property
    def kid(self) -> str:
        return key_id(self.raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm == "ed25519":
            ed = _ed25519()
            try:
                ed.Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            except Exception:  # cryptography raises InvalidSignature (or ValueError on junk)
                return False
            return True
        return bool(_sm2(None, self.raw).verify_with_sm3(signature.hex(), message))


@dataclass(frozen=True)
class Signer:
    algorithm: Algorithm
    private: Any
    """Ed25519PrivateKey, or the SM2 private key as 64 hex digits."""
    public: PublicKey

    @property
    def kid(self) -> str:
        return self.public.kid

    def sign(self, message: bytes) -> bytes:
        if self.algorithm == "ed25519":
            return bytes(self.private.sign(message))
        return _sm2_sign(str(self.private), self.public.raw, message)


def generate_signer(algorithm: Algorithm) -> Signer:
    if algorithm == "ed25519":
        private = _ed25519().Ed25519PrivateKey.generate()
        return Signer("ed25519", private, PublicKey("ed25519", _ed_public_raw(private)))
    if algorithm == "sm2":
        d = int.from_bytes(os.urandom(32), "big") % (_SM2_N - 2) + 1
        return _sm2_signer(f"{d:064x}")
    raise ConfigError(f"unknown signing algorithm {algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}")


def default_key_path(state_dir: Path, algorithm: Algorithm) -> Path:
    return state_dir / "keys" / f"aigc-{algorithm}.key"


def load_or_create_signer(path: Path, algorithm: Algorithm, *, create: bool) -> Signer:
    """The signer stored at `path` (created with its `.pub` when absent and `create` is true)."""
    if not path.is_file():
        if not create:
            raise ConfigError(
                f"signing key {path} does not exist",
                hint="fix [generate.labels] signing_key, or remove it to use the workspace key",
            )
        signer = generate_signer(algorithm)
        save_signer(signer, path)
        return signer
    return load_signer(path, algorithm)


def save_signer(signer: Signer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if signer.algorithm == "ed25519":
        serialization = _serialization()
        private_text = signer.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
    else:
        private_text = f"{signer.private}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(private_text)
    os.chmod(path, 0o600)
    path.with_suffix(".pub").write_text(public_key_text(signer.public), encoding="ascii")


def load_signer(path: Path, algorithm: Algorithm) -> Signer:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if algorithm == "ed25519":
        if "PRIVATE KEY" not in text:
            raise ConfigError(f"{path} is not a PEM private key", hint="an Ed25519 key is PKCS#8 PEM")
        private = _serialization().load_pem_private_key(text.encode("ascii"), password=None)
        if not isinstance(private, _ed25519().Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(private).__name__}, not an Ed25519 private key")
        return Signer("ed25519", private, PublicKey("ed25519", _ed_public_raw(private), str(path)))
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ConfigError(f"{path} is not an SM2 private key", hint="an SM2 key file holds 64 hex digits")
    return _sm2_signer(text.lower())


def public_key_text(public: PublicKey) -> str:
    if public.algorithm == "ed25519":
        serialization = _serialization()
        key = _ed25519().Ed25519PublicKey.from_public_bytes(public.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    return f"04{public.raw.hex()}\n"


def load_public_key(path: Path) -> PublicKey:
    """An Ed25519 (PEM) or SM2 (hex, optionally 04-prefixed) public key file."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read public key {path}: {exc.strerror}") from exc
    if "PUBLIC KEY" in text:
        key = _serialization().load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, _ed25519().Ed25519PublicKey):
            raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
        serialization = _serialization()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey("ed25519", raw, str(path))
    hex_digits = text[2:] if len(text) == 130 and text.startswith("04") else text
    try:
        raw = bytes.fromhex(hex_digits)
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise ConfigError(
            f"{path} is neither an Ed25519 PEM public key nor an SM2 public key (128/130 hex digits)"
        )
    return PublicKey("sm2", raw, str(path))


def _sm2_signer(private_hex: str) -> Signer:
    point = _sm2(private_hex, None)._kg(int(private_hex, 16), _sm2_curve()["g"])
    return Signer("sm2", private_hex, PublicKey("sm2", bytes.fromhex(point)))


def _sm2_sign(private_hex: str, public_raw: bytes, message: bytes) -> bytes:
    crypt = _sm2(private_hex, public_raw)
    digest = bytes.fromhex(crypt._sm3_z(message))  # e = SM3(Z_A ‖ M)
    counter = 0
    while True:  # a nonce from key and message; retry in the (negligible) degenerate cases
        seed = hmac.new(bytes.fromhex(private_hex), digest + counter.to_bytes(4, "big"), "sha256").digest()
        nonce = int.from_bytes(seed, "big") % (_SM2_N - 1) + 1
        signature = crypt.sign(digest, f"{nonce:064x}")
        if signature:
            return bytes.fromhex(signature)
        counter += 1


def _sm2(private_hex: str | None, public_raw: bytes | None) -> Any:
    try:
        from gmssl import sm2
    except ImportError as exc:
        raise MissingDependencyError(
            "SM2 signatures need the gmssl package", hint="pip install gmssl (pure Python)"
        ) from exc
    crypt = sm2.CryptSM2(private_key=private_hex or "", public_key="")
    # Set after construction: CryptSM2 strips a leading "04" with str.lstrip, which also eats
    # the first digits of keys whose x coordinate starts with 0 or 4.
    crypt.public_key = public_raw.hex() if public_raw else ""
    return crypt


def _sm2_curve() -> dict[str, str]:
    from gmssl import sm2

    return dict(sm2.default_ecc_table)


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise MissingDependencyError(
            "Ed25519 label signatures need the cryptography package", hint="pip install cryptography"
        ) from exc
    return ed25519


def _serialization() -> Any:
    _ed25519()
    from cryptography.hazmat.primitives import serialization

    return serialization


def _ed_public_raw(private: Any) -> bytes:
    serialization = _serialization()
    return bytes(
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
