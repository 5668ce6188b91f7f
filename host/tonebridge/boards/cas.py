"""The CA roots a board trusts for https: boards/<board>/ca/*.der.

Each board lists its roots in CA_FILES; the build copies them to the board's flash.
`refresh_cas()` rewrites every board's files from a PEM bundle (certifi's, else the
system's), so the committed DER files can be checked against a known source.
"""

import base64
import os
import warnings

from tonebridge.boards import FirmwareError
from tonebridge.boards.facts import board_names, boards_dir_of, load_board
from tonebridge.fileio import write_atomic

# The roots a board may trust: file name -> the certificate's subject common name.
CA_ROOTS = {
    "isrg-root-x1.der": "ISRG Root X1",  # Let's Encrypt, RSA
    "isrg-root-x2.der": "ISRG Root X2",  # Let's Encrypt, ECDSA
    "gts-root-r1.der": "GTS Root R1",  # Google Trust Services, RSA
    "gts-root-r4.der": "GTS Root R4",  # Google Trust Services, ECDSA
}


def default_ca_bundle():
    """certifi's bundle when installed, else the system's."""
    try:
        import certifi

        return certifi.where()
    except ImportError:
        return "/etc/ssl/certs/ca-certificates.crt"


def _pem_blocks(text):
    """(label from a "# Label:" line or None, DER bytes) of each certificate in a PEM bundle."""
    blocks, label, inside, lines = [], None, False, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# Label:"):
            label = line.split(":", 1)[1].strip().strip('"')
        elif line == "-----BEGIN CERTIFICATE-----":
            inside, lines = True, []
        elif line == "-----END CERTIFICATE-----":
            blocks.append((label, base64.b64decode("".join(lines))))
            inside, label = False, None
        elif inside:
            lines.append(line)
    return blocks


def _common_name(der, label):
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - cryptography comes with the dev install
        return label
    with warnings.catch_warnings():  # a few old roots in bundles have non-positive serial numbers
        warnings.simplefilter("ignore")
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else label


def refresh_cas(boards_dir=None, bundle=None):
    """Rewrite every board's ca/*.der (its CA_FILES) from a PEM bundle.

    Returns:
        the files written.

    Raises:
        FirmwareError: the bundle lacks a root, or a board names an unknown CA file.
    """
    boards_dir = boards_dir or boards_dir_of()
    bundle = bundle or default_ca_bundle()
    with open(bundle, encoding="ascii", errors="replace") as f:
        blocks = _pem_blocks(f.read())
    by_name = {}
    for label, der in blocks:
        name = _common_name(der, label)
        if name:
            by_name.setdefault(name, der)
    written = []
    for board_name in board_names(boards_dir):
        board = load_board(board_name, boards_dir)
        for file_name in board.ca_files:
            if file_name not in CA_ROOTS:
                raise FirmwareError("%s: unknown CA file %s (known: %s)"
                                    % (board_name, file_name, ", ".join(sorted(CA_ROOTS))))
            der = by_name.get(CA_ROOTS[file_name])
            if der is None:
                raise FirmwareError("%s has no %s certificate" % (bundle, CA_ROOTS[file_name]))
            path = os.path.join(board.directory, "ca", file_name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_atomic(path, der)
            written.append(path)
    return written
