"""RFC 6962 hashing: the writer's tree against Certificate Transparency's published
vectors, and its proofs checked by the client's verifier, which shares no code."""

from __future__ import annotations

import pytest

from msgarchive.proofs import included, root_from_path
from msgarchive_server.domain.manifests import merkle

# Certificate Transparency's reference leaves and tree heads for sizes 0..8,
# and audit paths (0-based leaf index, tree size, path).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PATHS = [
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]  # fmt: skip


def hashed(leaves: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(leaf) for leaf in leaves]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_published_tree_heads(size: int) -> None:
    assert merkle.root(hashed(LEAVES[:size])).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_audit_paths_match_the_published_ones_and_verify(
    index: int, size: int, path: list[str]
) -> None:
    proof = merkle.inclusion_proof(index, hashed(LEAVES[:size]))
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert included(LEAVES[index], index, size, proof, root)
    assert not included(LEAVES[index], index, size, proof, bytes.fromhex(ROOTS[0]))


@pytest.mark.parametrize("size", range(1, 41))
def test_every_leaf_of_every_tree_shape_proves_and_nothing_else_does(size: int) -> None:
    leaves = [f"entry {n} of {size}".encode() for n in range(size)]
    leaf_hashes = hashed(leaves)
    root = merkle.root(leaf_hashes)
    for index, leaf in enumerate(leaves):
        path = merkle.inclusion_proof(index, leaf_hashes)
        assert included(leaf, index, size, path, root)
        assert not included(leaf + b"!", index, size, path, root)  # another leaf
        if size > 1:
            other = (index + 1) % size
            assert not included(leaf, other, size, path, root)  # another place
            assert not included(leaf, index, size, path[:-1], root)  # a hash short
        assert root_from_path(leaf, index, size, [*path, root]) is None  # one too many
    assert root_from_path(leaves[0], size, size, []) is None  # no such leaf


@pytest.mark.parametrize("size", range(0, 41))
def test_a_kept_tree_gives_every_path_and_root_the_definition_gives(size: int) -> None:
    leaf_hashes = hashed([f"entry {n} of {size}".encode() for n in range(size)])
    tree = merkle.Tree(leaf_hashes)
    assert tree.root() == merkle.root(leaf_hashes)
    for index in range(size):
        assert tree.path(index) == merkle.inclusion_proof(index, leaf_hashes)
    with pytest.raises(IndexError):
        tree.path(size)
