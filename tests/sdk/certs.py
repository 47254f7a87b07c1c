"""Test certificates: ECDSA P-256 and RSA keys, self-signed or leaf + intermediate
chains, expired, wildcard. Everything is generated at run time; nothing is shipped.

A `CertBundle` carries the PEM texts the ULB API takes (`UserCert`, `PrivateKey`,
`CaCert`, or all three as one `SSLContent`) and the facts the server must derive from
them (`NotBefore`/`NotAfter` as Unix seconds, the primary domain, the SAN DNS names).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_serials = itertools.count(1000)


@dataclass(frozen=True)
class CertBundle:
    cert_pem: str
    key_pem: str
    # Intermediate certificate(s), leaf-issuer first; "" for a self-signed leaf.
    chain_pem: str
    common_name: str
    dns_names: tuple[str, ...]
    not_before: int
    not_after: int
    key_type: str = field(default="ec")

    @property
    def domain(self) -> str:
        """What DescribeSSL/DescribeSSLV2 `Domains` should show: the CN, else the first SAN."""
        return self.common_name or (self.dns_names[0] if self.dns_names else "")

    @property
    def all_in_one(self) -> str:
        """One PEM bundle: certificate, key, chain (ucloud-cli --all-in-one-file)."""
        return self.cert_pem + self.key_pem + self.chain_pem

    def create_ssl_params(self, name: str) -> dict:
        """CreateSSL parameters in the separate-fields form (terraform, certimate)."""
        params = {"SSLName": name, "SSLType": "Pem", "UserCert": self.cert_pem, "PrivateKey": self.key_pem}
        if self.chain_pem:
            params["CaCert"] = self.chain_pem
        return params

    def expected_content_stripped(self) -> str:
        """certimate's de-duplication key: cert + key + chain with all whitespace removed."""
        return strip_whitespace(self.cert_pem + self.key_pem + self.chain_pem)

    def is_expired(self, now: int | None = None) -> bool:
        now = int(dt.datetime.now(dt.timezone.utc).timestamp()) if now is None else now
        return self.not_after < now


def strip_whitespace(text: str) -> str:
    return "".join(text.split())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _new_key(key_type: str):
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}")


def _key_pem(key, key_format: str) -> str:
    formats = {
        # "BEGIN EC PRIVATE KEY" / "BEGIN RSA PRIVATE KEY"
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        # "BEGIN PRIVATE KEY"
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    return key.private_bytes(
        serialization.Encoding.PEM, formats[key_format], serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class _Issuer:
    key: object
    cert: x509.Certificate


class CertFactory:
    """Makes certificates. The private CA (root + intermediate, both ECDSA) is created
    once per factory and reused for every chained leaf."""

    def __init__(self) -> None:
        self._root: _Issuer | None = None
        self._intermediate: _Issuer | None = None

    # ---- public helpers -------------------------------------------------------------

    def self_signed(self, cn: str, *, key_type: str = "ec", sans: tuple[str, ...] | None = None,
                    key_format: str = "traditional") -> CertBundle:
        return self.leaf(cn, key_type=key_type, sans=sans, chained=False, key_format=key_format)

    def chained(self, cn: str, *, key_type: str = "ec", sans: tuple[str, ...] | None = None,
                key_format: str = "traditional") -> CertBundle:
        return self.leaf(cn, key_type=key_type, sans=sans, chained=True, key_format=key_format)

    def expired(self, cn: str, *, key_type: str = "ec", chained: bool = True) -> CertBundle:
        now = _now()
        return self.leaf(cn, key_type=key_type, chained=chained,
                         not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=30))

    def wildcard(self, base_domain: str, *, key_type: str = "ec") -> CertBundle:
        return self.leaf(f"*.{base_domain}", key_type=key_type, chained=True,
                         sans=(f"*.{base_domain}", base_domain))

    def leaf(self, cn: str, *, key_type: str = "ec", sans: tuple[str, ...] | None = None,
             chained: bool = True, key_format: str = "traditional",
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> CertBundle:
        now = _now()
        not_before = not_before or now - dt.timedelta(days=1)
        not_after = not_after or now + dt.timedelta(days=90)
        sans = tuple(sans) if sans is not None else (cn,)
        key = _new_key(key_type)

        if chained:
            issuer = self._get_intermediate()
            issuer_name, signing_key = issuer.cert.subject, issuer.key
        else:
            issuer_name, signing_key = _name(cn), key

        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(next(_serials))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
            )
        cert = builder.sign(signing_key, hashes.SHA256())
        chain_pem = _cert_pem(self._get_intermediate().cert) if chained else ""
        return CertBundle(
            cert_pem=_cert_pem(cert),
            key_pem=_key_pem(key, key_format),
            chain_pem=chain_pem,
            common_name=cn,
            dns_names=sans,
            not_before=int(not_before.timestamp()),
            not_after=int(not_after.timestamp()),
            key_type=key_type,
        )

    # ---- the private CA -------------------------------------------------------------

    def _get_root(self) -> _Issuer:
        if self._root is None:
            key = _new_key("ec")
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(_name("certbind test root"))
                .issuer_name(_name("certbind test root"))
                .public_key(key.public_key())
                .serial_number(next(_serials))
                .not_valid_before(now - dt.timedelta(days=3650))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .sign(key, hashes.SHA256())
            )
            self._root = _Issuer(key, cert)
        return self._root

    def _get_intermediate(self) -> _Issuer:
        if self._intermediate is None:
            root = self._get_root()
            key = _new_key("ec")
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(_name("certbind test intermediate"))
                .issuer_name(root.cert.subject)
                .public_key(key.public_key())
                .serial_number(next(_serials))
                .not_valid_before(now - dt.timedelta(days=3000))
                .not_valid_after(now + dt.timedelta(days=3000))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(root.key, hashes.SHA256())
            )
            self._intermediate = _Issuer(key, cert)
        return self._intermediate
