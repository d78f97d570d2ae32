"""Locating raw files, downloading and verifying them. Nothing is read from a half download."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ..errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Where datasets live: $UNLEARN_DATA_DIR; else `data/` of the checkout this code runs from;
    else (an installed package) the user's cache folder, $XDG_CACHE_HOME/recunlearn/data."""
    if os.environ.get("UNLEARN_DATA_DIR"):
        return Path(os.environ["UNLEARN_DATA_DIR"]).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "unlearn").is_dir():
        return (REPO_ROOT / "data").resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    return (cache / "recunlearn" / "data").resolve()


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify(path: Path, cfg: dict) -> str:
    """sha256 of a file, checked against the pins in `cfg` (sha256 or git blob)."""
    name = path.name
    digest = file_digest(path)
    want = (cfg.get("sha256") or {}).get(name)
    if want and digest != want:
        raise DataError(
            f"Checksum mismatch for {path}: sha256 {digest}, expected {want}. The file is corrupt or "
            f"a different version; delete it and download it again from {cfg.get('url') or 'its source'}."
        )
    blob = (cfg.get("git_blob") or {}).get(name)
    if blob and git_blob_id(path) != blob:
        raise DataError(
            f"Checksum mismatch for {path}: git blob id differs from {blob}. The file is corrupt or a "
            f"different version; fetch it again from {cfg.get('url') or 'its source'}."
        )
    return digest


def ensure_files(cfg: dict) -> list[Path]:
    """Paths of the dataset's files, downloading the archive first when it is absent."""
    folder = data_root() / cfg["folder"]
    paths = [folder / f for f in cfg["files"]]
    missing = [p for p in paths if not p.is_file()]
    if missing and cfg.get("url"):
        try:
            download_archive(cfg["url"], cfg.get("md5"), folder)
        except DataError:
            raise
        except Exception as exc:  # no network, HTTP errors, bad zip
            raise DataError(_missing_message(cfg, missing, f"Download failed ({exc}).")) from exc
        missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(_missing_message(cfg, missing, ""))
    return paths


def _missing_message(cfg: dict, missing: list[Path], why: str) -> str:
    where = cfg.get("url") or cfg.get("source") or "its published source"
    return (
        f"Dataset '{cfg['name']}' is missing {', '.join(str(p) for p in missing)}. {why} "
        f"Expected the folder {data_root() / cfg['folder']} with files {', '.join(cfg['files'])}; "
        f"get them from {where} (checksums in the dataset config), or set UNLEARN_DATA_DIR to a folder "
        f"that holds '{cfg['folder']}/'."
    ).replace("  ", " ")


def download_archive(url: str, md5: str | None, folder: Path) -> None:
    """Download a zip with pooch (which checks the MD5 pin and keeps nothing that fails it), unzip it
    into a temporary folder beside `folder`, then move its files into place."""
    import pooch

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
        try:
            pooch.retrieve(url, known_hash=f"md5:{md5}" if md5 else None, fname="archive.zip", path=tmp,
                           processor=pooch.Unzip(extract_dir="x"), progressbar=False)
        except ValueError as exc:  # pooch's hash mismatch
            if "hash" in str(exc).lower():
                raise DataError(f"Checksum mismatch for the download of {url}: expected MD5 {md5}. "
                                "Nothing was kept.") from exc
            raise
        extract = Path(tmp) / "x"
        top = [p for p in extract.iterdir()]
        src = top[0] if len(top) == 1 and top[0].is_dir() else extract
        if folder.exists():
            for p in src.iterdir():
                target = folder / p.name
                if not target.exists():
                    os.replace(p, target)
        else:
            os.replace(src, folder)
