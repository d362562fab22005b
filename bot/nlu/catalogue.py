"""The product catalogue (`nlu_data/catalogue.yml`) and the NLU files made from it.

python -m bot.nlu.catalogue          # rewrite the generated files
python -m bot.nlu.catalogue --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CATALOGUE = Path("nlu_data/catalogue.yml")
LOOKUP = Path("nlu_data/nlu/catalogue.yml")
JIEBA = Path("nlu_data/jieba/products.txt")
HEADER = (
    "# Generated from nlu_data/catalogue.yml by `make catalogue`: edit that file, not this one.\n"
)
# High enough that jieba keeps a product name in one piece.
JIEBA_FREQUENCY = 2000


@dataclass(frozen=True)
class Product:
    name: str
    category: str
    aliases: tuple[str, ...]


def load(path: Path) -> list[Product]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    products = []
    names: set[str] = set()
    for entry in data.get("products") or []:
        product = Product(
            name=str(entry["name"]).strip(),
            category=str(entry.get("category", "")).strip(),
            aliases=tuple(str(a).strip() for a in entry.get("aliases") or []),
        )
        for word in (product.name, *product.aliases):
            if word in names:
                raise ValueError(f"{path}: {word!r} names two products")
            names.add(word)
        products.append(product)
    return products


def render_lookup(products: list[Product]) -> str:
    lines = [
        HEADER.rstrip(),
        'version: "3.1"',
        "",
        "nlu:",
        "  - lookup: product",
        "    examples: |",
    ]
    for product in products:
        lines += [f"      - {word}" for word in (product.name, *product.aliases)]
    for product in products:
        if product.aliases:
            lines += ["", f"  - synonym: {product.name}", "    examples: |"]
            lines += [f"      - {alias}" for alias in product.aliases]
    return "\n".join(lines) + "\n"


def render_jieba(products: list[Product]) -> str:
    words = [w for p in products for w in (p.name, *p.aliases)]
    # No header: jieba would read a comment line as a word.
    return "".join(f"{w} {JIEBA_FREQUENCY} nz\n" for w in words)


def outputs(root: Path) -> dict[Path, str]:
    products = load(root / CATALOGUE)
    return {root / LOOKUP: render_lookup(products), root / JIEBA: render_jieba(products)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that the files are current"
    )
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    stale = [
        p
        for p, text in outputs(args.root).items()
        if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run `make catalogue`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs(args.root).items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
