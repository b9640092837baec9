"""Splits (`paulow.splits`): by file when there are enough files, else contiguous page blocks; a
stack's pages never interleave between the sides. Expected indices are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paulow.planner import Plan
from paulow.slices import Slice
from paulow.splits import describe, kfold, split_test


def _stacks(*pages: int) -> list[Slice]:
    """One file per entry with that many pages: f0.tif, f1.tif, ..."""
    return [
        Slice(np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.uint8), Path(f"f{f}.tif"), p)
        for f, n in enumerate(pages)
        for p in range(n)
    ]


def _pages(slices: list[Slice], name: str = "f0.tif") -> list[int]:
    return [s.page for s in slices if s.source.name == name]


def _files(slices: list[Slice]) -> set[str]:
    return {s.source.name for s in slices}


def test_one_stack_of_30_pages_holds_out_a_contiguous_test_block_chosen_by_the_seed():
    stack = _stacks(30)
    # 10 % of 30 pages = 3 pages; the 30 pages are 10 slots of 3: slot seed % 10
    for seed, expected in ((0, [0, 1, 2]), (7, [21, 22, 23]), (13, [9, 10, 11])):
        rest, test = split_test(stack, 0.1, seed)
        assert _pages(test) == expected
        assert _pages(rest) == [p for p in range(30) if p not in expected]


def test_one_stack_cut_into_five_contiguous_validation_blocks():
    rest, _ = split_test(_stacks(30), 0.1, seed=7)  # test pages 21-23; 27 pages left
    folds = kfold(rest, 5, seed=7)
    # 27 pages in 5 blocks of 6, 6, 5, 5, 5 along the page order (the test block skipped)
    assert [_pages(val) for _, val in folds] == [
        [0, 1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10, 11],
        [12, 13, 14, 15, 16],
        [17, 18, 19, 20, 24],
        [25, 26, 27, 28, 29],
    ]
    for train, val in folds:
        assert sorted(_pages(train) + _pages(val)) == _pages(rest)


def test_one_stack_single_split_validates_one_block():
    ((train, val),) = kfold(_stacks(30), 1, seed=2, val_fraction=0.2)
    assert _pages(val) == [12, 13, 14, 15, 16, 17]  # 6 pages; slot 2 % 5 of five slots of 6
    assert len(train) == 24


def test_enough_single_images_split_by_file_with_the_seed_as_before():
    rest, test = split_test(_stacks(*[1] * 12), 0.1, seed=0)
    assert _files(test) == {"f9.tif"}  # np.random.default_rng(0).permutation(12)[0] == 9
    assert len(rest) == 11


def test_enough_stacks_split_by_file_and_keep_each_stack_on_one_side():
    slices = _stacks(*[3] * 12)  # 12 files of 3 pages: >= 10 files for a 10 % share, >= 5 for 5 folds
    rest, test = split_test(slices, 0.1, seed=0)
    assert _files(test) == {"f9.tif"} and len(test) == 3
    folds = kfold(rest, 5, seed=3)
    # the 11 files left, in np.random.default_rng(3).permutation(11) order, dealt out 5 ways
    assert _files(folds[0][1]) == {"f10.tif", "f4.tif", "f8.tif"}
    seen = []
    for train, val in folds:
        assert not _files(train) & _files(val)
        assert all(len(_pages(val, name)) == 3 for name in _files(val))
        seen += sorted(_files(val))
    assert sorted(seen) == sorted(_files(rest))


def test_three_images_and_a_stack_are_cut_in_page_order():
    slices = _stacks(1, 1, 1, 30)  # 4 files (< 10): the 33-page sequence f0, f1, f2, f3#0..29
    rest, test = split_test(slices, 0.1, seed=1)  # 3 pages: slot 1 of 11 = f3 pages 0-2
    assert [(s.source.name, s.page) for s in test] == [("f3.tif", 0), ("f3.tif", 1), ("f3.tif", 2)]
    folds = kfold(rest, 5, seed=1)  # 30 pages left, 4 files (< 5): 5 blocks of 6
    assert [(s.source.name, s.page) for s in folds[0][1]] == [
        ("f0.tif", 0),
        ("f1.tif", 0),
        ("f2.tif", 0),
        ("f3.tif", 3),
        ("f3.tif", 4),
        ("f3.tif", 5),
    ]
    assert [_pages(val, "f3.tif") for _, val in folds[1:]] == [
        list(range(6, 12)),
        list(range(12, 18)),
        list(range(18, 24)),
        list(range(24, 30)),
    ]


def test_ten_files_one_of_them_a_stack_split_by_file():
    slices = _stacks(5, *[1] * 9)  # 10 files: enough for a 10 % share by file
    rest, test = split_test(slices, 0.1, seed=0)
    assert len(_files(test)) == 1
    for name in _files(slices):  # every file entirely on one side
        assert (name in _files(test)) != (name in _files(rest))


def test_a_split_never_takes_every_page():
    ((train, val),) = kfold(_stacks(2), 1, seed=0, val_fraction=0.75)
    assert (_pages(train), _pages(val)) == ([1], [0])


def test_the_plan_line_says_how_the_split_was_made():
    stack = _stacks(30)
    rest, test = split_test(stack, 0.1, 0)
    text = describe(stack, rest, test, 5, 0.1)
    assert text == (
        "split: test share in contiguous page blocks, 5 folds in contiguous page blocks "
        "(1 file(s), 30 page(s): too few files to split by file, a stack's pages are never "
        "interleaved)"
    )
    many = _stacks(*[1] * 12)
    rest, test = split_test(many, 0.1, 0)
    assert describe(many, rest, test, 1, 0.1) == (
        "split: test share by file, validation by file (12 file(s), 12 page(s))"
    )
    plan = Plan(1, None, None, None, 0.25, "no time limit: the requested folds", split=text)
    assert plan.line() == f"plan: 1 fold(s), {text} — no time limit: the requested folds"
