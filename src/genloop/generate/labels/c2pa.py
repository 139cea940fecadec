"""C2PA manifests: sign a generated file as AI-made, and read that claim back (`genloop[provenance]`).

A C2PA manifest is a signed claim embedded in the file (PNG `caBX` chunk, JPEG APP11, WebP and
WAV `C2PA` chunks). genloop writes one claim per item:

    claim_generator_info  [{"name": "genloop", "version": <genloop version>}]
    c2pa.actions          [{"action": "c2pa.created",
                            "digitalSourceType": ".../digitalsourcetype/trainedAlgorithmicMedia",
                            "softwareAgent": {"name": <model>, "version": <n>}}]
    stds.schema-org.CreativeWork   author = the producer (the GB 45438 `ContentProducer`)
    c2pa.hash.data        the hard binding: a SHA-256 over every byte outside the manifest,
                          added by c2pa-python itself when it signs

Order: the GB 45438 `AIGC` metadata (iTXt/XMP/chunk) is written FIRST and C2PA signs the final
bytes LAST; the hard binding then covers the AIGC metadata too, so a later edit to the file (one
changed pixel, a stripped metadata chunk) shows up as `assertion.dataHash.mismatch`, and a
re-encode usually drops the manifest altogether (`present` False). A post-processor that runs
after labelling must therefore re-label.

The signing algorithm follows the key: Ed25519 → Ed25519, EC P-256 → ES256 (P-384 → ES384,
P-521 → ES512, RSA → PS256). No timestamp authority is used (`ta_url=None`): signing needs no
network; the manifest is then valid only while the signing certificate is.
For a certificate chain to try this with, see `certificates.make_test_chain` (NOT for production).
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import genloop
from genloop.errors import GenloopError, MissingDependencyError

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
INSTALL_HINT = "pip install 'genloop[provenance]'"
C2PA_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "wav": "audio/wav"}
"""The formats genloop writes that C2PA can carry a manifest in (format → MIME type)."""
_ALIASES = {"jpg": "jpeg", "wave": "wav"}
# Validation codes that mean "the hard binding was checked and matched" (data, box and BMFF hashes).
_HARD_BINDING_MATCHES = ("assertion.dataHash.match", "assertion.boxesHash.match", "assertion.bmffHash.match")
# Reading and signing never touch the network: no OCSP, no remote manifests.
_OFFLINE = {"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}}


@dataclass(frozen=True)
class C2paReport:
    """What a file's C2PA manifest says, read leniently (a broken file is reported, never raised).

    present   a manifest store was found (or the bytes carry one that could not be parsed)
    valid     the claim signature, every hashed assertion and the hard binding check out, i.e.
              the file is unchanged since signing (c2pa validation state "Valid" or "Trusted")
    problems  C2PA validation failure codes, e.g. `assertion.dataHash.mismatch` (the bytes were
              changed: tampered) or `signingCredential.untrusted` (the chain does not end at a
              trust anchor the reader knows — every self-made CA, unless passed as
              `trust_anchors`; this alone leaves `valid` True and `trusted` False);
              genloop adds `claim.hardBindings.missing` and `c2pa.unreadable: <detail>`
    manifest  the active manifest as c2pa-python reports it (dict), None when absent
    digital_source_type, software_agent   from the `c2pa.created` action; the agent as
              "name/version" (the version omitted when the manifest has none)
    trusted   the signing chain ends at a configured or built-in trust anchor ("Trusted")
    """

    present: bool
    valid: bool
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    digital_source_type: str | None = None
    software_agent: str | None = None
    trusted: bool = False


def c2pa_available() -> bool:
    """Whether c2pa-python is installed (the `provenance` extra)."""
    try:
        _c2pa()
    except MissingDependencyError:
        return False
    return True


def sign_c2pa(
    data: bytes, fmt: str, *, certificate: Path, key: Path, model_version: str, producer: str
) -> bytes:
    """`data` with a signed C2PA manifest embedded: created by `model_version`, trained algorithmic media.

    `certificate` is a PEM chain (leaf first, then intermediates; the root may be left out) and `key`
    the leaf's PEM private key. Call it on the final bytes, after every other label is written.
    """
    c2pa = _c2pa()
    mime = _mime(fmt)
    signer = _signer(Path(certificate).resolve(), Path(key).resolve(), _mtime(certificate), _mtime(key))
    manifest = _manifest(model_version=model_version, producer=producer)
    signed = io.BytesIO()
    try:
        c2pa.Builder(manifest, context=_context(None, 0)).sign(signer, mime, io.BytesIO(data), signed)
    except c2pa.C2paError as error:
        raise GenloopError(
            f"C2PA signing of a {fmt} file failed: {error}",
            hint=f"check that the data is a well-formed {fmt} file and {certificate} the chain of {key}",
        ) from error
    return signed.getvalue()


def read_c2pa(data: bytes, fmt: str, *, trust_anchors: Path | None = None) -> C2paReport:
    """The C2PA manifest of `data`, validated offline; `trust_anchors`: extra root CAs (PEM) to trust."""
    c2pa = _c2pa()
    mime = _mime(fmt)
    if trust_anchors is None:
        context = _context(None, 0)
    else:
        context = _context(str(Path(trust_anchors).resolve()), _mtime(trust_anchors))
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            return C2paReport(present=False, valid=False)
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as error:
        return C2paReport(
            present=b"jumb" in data and b"c2pa" in data, valid=False, problems=[f"c2pa.unreadable: {error}"]
        )
    return _report(store, state, results)


def _report(store: dict[str, Any], state: str | None, results: dict[str, Any]) -> C2paReport:
    problems = list(dict.fromkeys(str(entry.get("code")) for entry in store.get("validation_status") or []))
    successes = {entry.get("code") for entry in (results.get("activeManifest") or {}).get("success") or []}
    if not successes.intersection(_HARD_BINDING_MATCHES) and not any(
        "Hash.mismatch" in code for code in problems
    ):
        problems.append("claim.hardBindings.missing")
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "")
    if state is None:  # older c2pa-python: judge by the failure codes, trust aside
        state = "Invalid" if any(not code.startswith("signingCredential.") for code in problems) else "Valid"
    created = _created_action(manifest or {})
    return C2paReport(
        present=True,
        valid=state in ("Valid", "Trusted") and "claim.hardBindings.missing" not in problems,
        problems=problems,
        manifest=manifest,
        digital_source_type=created.get("digitalSourceType"),
        software_agent=_agent_text(created.get("softwareAgent")),
        trusted=state == "Trusted",
    )


def _created_action(manifest: dict[str, Any]) -> dict[str, Any]:
    """The `c2pa.created` action (labels `c2pa.actions`, `c2pa.actions.v2`, `c2pa.actions__1`, …)."""
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if action.get("action") == "c2pa.created":
                return dict(action)
    return {}


def _agent_text(agent: Any) -> str | None:
    if isinstance(agent, dict):  # C2PA 2.x: a ClaimGeneratorInfo {"name", "version"}
        name, version = agent.get("name"), agent.get("version")
        if not name:
            return None
        return f"{name}/{version}" if version else str(name)
    return str(agent) if agent else None  # C2PA 1.x: a string


def software_agent(model_version: str) -> dict[str, str]:
    """genloop model version ids are `NAME-vN` (models/versions.py) → {"name": NAME, "version": N}."""
    name, separator, version = model_version.rpartition("-v")
    if separator and name and version.isdigit():
        return {"name": name, "version": version}
    return {"name": model_version}


def _manifest(*, model_version: str, producer: str) -> dict[str, Any]:
    created = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": software_agent(model_version),
    }
    author: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "CreativeWork",
        "author": [{"@type": "Organization", "name": producer}],
    }
    return {
        "claim_generator_info": [{"name": "genloop", "version": genloop.__version__}],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": "stds.schema-org.CreativeWork", "kind": "Json", "data": author},
        ],
    }


def _mime(fmt: str) -> str:
    normal = fmt.lower().lstrip(".")
    normal = _ALIASES.get(normal, normal)
    if normal not in C2PA_FORMATS:
        raise GenloopError(
            f"C2PA manifests are not supported for format {fmt!r}",
            hint=f"C2PA labels go on {', '.join(sorted(C2PA_FORMATS))} files; turn c2pa off for this channel",
        )
    return C2PA_FORMATS[normal]


def _c2pa() -> ModuleType:
    try:
        import c2pa
    except ImportError as error:
        raise MissingDependencyError(
            "C2PA manifests need the c2pa-python package, which is not installed", hint=INSTALL_HINT
        ) from error
    return c2pa


def _mtime(path: Path) -> int:
    """A file's modification time, so the caches pick up a replaced certificate, key or anchor file."""
    try:
        return Path(path).stat().st_mtime_ns
    except FileNotFoundError as error:
        raise GenloopError(
            f"C2PA certificate, key or trust anchor file not found: {path}",
            hint="set [generate.labels] c2pa_certificate and c2pa_key in genloop.toml "
            "(to try C2PA: genloop.generate.labels.certificates.make_test_chain(directory))",
        ) from error


@functools.lru_cache(maxsize=8)
def _context(trust_anchors: str | None, anchors_mtime: int) -> Any:
    """One c2pa Context per trust configuration: offline, no thumbnail (it only adds bytes)."""
    settings: dict[str, Any] = {**_OFFLINE, "builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": Path(trust_anchors).read_text(encoding="utf-8")}
    return _c2pa().Context.from_dict(settings)


@functools.lru_cache(maxsize=8)
def _signer(certificate: Path, key: Path, certificate_mtime: int, key_mtime: int) -> Any:
    """A c2pa Signer for the chain and key (cached: loading and checking them is per job, not per item)."""
    c2pa = _c2pa()  # c2pa-python depends on cryptography, so both are there from here on
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain_pem, key_pem = certificate.read_bytes(), key.read_bytes()
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except (ValueError, TypeError) as error:
        raise GenloopError(
            f"cannot load the C2PA signing key {key} or certificate chain {certificate}: {error}",
            hint="both must be PEM; the key unencrypted (PKCS#8 or traditional)",
        ) from error
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise GenloopError(
            f"the first certificate in {certificate} does not belong to the key {key}",
            hint="put the leaf certificate of this key first in the chain file",
        )
    algorithm = getattr(c2pa.C2paSigningAlg, _algorithm(private_key, key))
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(algorithm, chain_pem, key_pem, None))


def _algorithm(private_key: Any, key: Path) -> str:
    """The C2PA signing algorithm for a key type (C2PA 2.x §13.2: Ed25519, ES256/384/512, PS256)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ED25519"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if private_key.curve.name in by_curve:
            return by_curve[private_key.curve.name]
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "PS256"
    raise GenloopError(
        f"the key {key} ({type(private_key).__name__}) has no C2PA signing algorithm",
        hint="use an Ed25519 or EC P-256 key (make_test_chain(directory, key_type='p256') makes one to try)",
    )
