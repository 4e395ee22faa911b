"""Permutation sets with large Hamming distances for jigsaw puzzles (Noroozi & Favaro 2016, ECCV).

Noroozi & Favaro pick permutations greedily from all ``n!`` so that the chosen set is far apart in
Hamming distance (number of positions where two permutations differ). This module uses the greedy
farthest-point rule: start from a random permutation, then repeatedly add the permutation whose
*minimum* distance to the chosen set is largest (ties: the first in lexicographic order). The paper's
Algorithm 1 ranks candidates by the *sum* of distances instead; the min rule makes the guarantee
explicit — :func:`min_hamming_distance` of the result is what the puzzle promises.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def maximal_hamming_permutations(num_permutations: int, num_tiles: int = 9, seed: int = 0) -> np.ndarray:
    """``(num_permutations, num_tiles)`` int64 array of distinct permutations chosen as described above."""
    if num_tiles < 2 or num_tiles > 10:
        raise ValueError(f"num_tiles must be in [2, 10] (all n! candidates are enumerated), got {num_tiles}")
    total = math.factorial(num_tiles)
    if not 1 <= num_permutations <= total:
        raise ValueError(f"num_permutations must be in [1, {total}] for {num_tiles} tiles, got {num_permutations}")
    candidates = np.array(list(itertools.permutations(range(num_tiles))), dtype=np.int8)
    # matches[k, v, i] = 1 where candidate i puts tile v at position k; the Hamming distance to p is
    # then num_tiles - sum_k matches[k, p[k], i] (a gather of num_tiles rows instead of a full compare).
    positions = np.arange(num_tiles)
    matches = (candidates.T[:, None, :] == np.arange(num_tiles, dtype=np.int8)[None, :, None]).astype(np.int8)

    def distances(index: int) -> np.ndarray:
        return num_tiles - matches[positions, candidates[index]].sum(axis=0, dtype=np.int16)

    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(total))]
    min_dist = distances(chosen[0])
    for _ in range(num_permutations - 1):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        np.minimum(min_dist, distances(nxt), out=min_dist)
    return candidates[chosen].astype(np.int64)


def min_hamming_distance(perms: np.ndarray) -> int:
    """Smallest pairwise Hamming distance in a set of permutations (``num_tiles`` for a single one)."""
    if len(perms) < 2:
        return int(perms.shape[1])
    diff = (perms[:, None, :] != perms[None, :, :]).sum(axis=2)
    np.fill_diagonal(diff, perms.shape[1])
    return int(diff.min())
