#!/usr/bin/env python3
"""Make promax's MovieLens-100k dataset folder from GroupLens' ml-100k files.

    python3 scripts/ml100k_split.py ML100K_DIR OUT_DIR

ML100K_DIR is the unpacked ml-100k.zip: u.data (user, item, rating, timestamp, tab
separated), u.item and u.user (`|` separated, Latin-1). OUT_DIR receives train.tsv,
valid.tsv, test.tsv (`user<TAB>item`, sorted by user, then item), items.tsv
(`item<TAB>title<TAB>genres<TAB>original_movie_id`) and users.tsv
(`user<TAB>age<TAB>gender<TAB>occupation<TAB>original_user_id`), in UTF-8.

The rule (docs/data.md): ratings of 3 and above are the positives; the users and items left
are renumbered 0.. in the order of their original ids; each user's items, sorted, are
permuted by one numpy `default_rng(2025)` stream taken user by user in id order, and cut
into train, valid and test with `max(1, floor(0.2 n + 0.5))` items each for valid and test.
Needs numpy (scripts/requirements.txt).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

MIN_RATING = 3
SPLIT_SEED = 2025
# u.item's 19 genre flags, in their column order (the names of ml-100k's u.genre).
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


class InputError(Exception):
    """An input file that is not in the ml-100k format; the message names file and line."""


def read_fields(path, sep, count, encoding):
    """Each line of `path` split on `sep`, checked to have `count` fields."""
    try:
        lines = path.read_text(encoding=encoding).splitlines()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}") from err
    rows = [line.split(sep) for line in lines if line]
    for number, fields in enumerate(rows, start=1):
        if len(fields) != count:
            raise InputError(f"{path}:{number}: expected {count} fields, found {len(fields)}")
    return rows


def positives(path):
    """(original user ids, original item ids) of the ratings >= MIN_RATING."""
    rows = read_fields(path, "\t", 4, "ascii")
    try:
        ratings = np.array([[int(f) for f in fields[:3]] for fields in rows], dtype=np.int64)
    except ValueError as err:
        raise InputError(f"{path}: a user, item or rating is not an integer: {err}") from err
    kept = ratings[ratings[:, 2] >= MIN_RATING]
    return kept[:, 0], kept[:, 1]


def split(users, items):
    """train, valid, test as lists of (user, item) over contiguous ids."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts = ([], [], [])
    for user in range(users.max() + 1):
        mine = np.sort(items[users == user])
        n = len(mine)
        held = max(1, int(np.floor(0.2 * n + 0.5))) if n >= 3 else 0
        order = rng.permutation(mine) if held else mine
        cuts = (order[: n - 2 * held], order[n - 2 * held : n - held], order[n - held :])
        for part, chosen in zip(parts, cuts):
            part.extend((user, int(item)) for item in chosen)
    return parts


def write_lines(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.writelines("\t".join(str(f) for f in row) + "\n" for row in sorted(rows))


def item_rows(path, original_items):
    """items.tsv rows for the kept items: new id, title, genres, original id."""
    by_id = {int(f[0]): f for f in read_fields(path, "|", 5 + len(GENRES), "latin-1")}
    rows = []
    for new, original in enumerate(original_items):
        fields = by_id.get(int(original))
        if fields is None:
            raise InputError(f"{path}: no line for movie {original}, which u.data rates")
        genres = "|".join(g for g, flag in zip(GENRES, fields[5:]) if flag == "1")
        # Three titles end in a space; the shipped items.tsv has them trimmed.
        rows.append((new, fields[1].strip(), genres, original))
    return rows


def user_rows(path, original_users):
    """users.tsv rows: new id, age, gender, occupation, original id."""
    by_id = {int(f[0]): f for f in read_fields(path, "|", 5, "latin-1")}
    missing = [u for u in original_users if int(u) not in by_id]
    if missing:
        raise InputError(f"{path}: no line for user {missing[0]}, who rates in u.data")
    return [(new, *by_id[int(u)][1:4], u) for new, u in enumerate(original_users)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the unpacked ml-100k folder (u.data, u.item, ...)")
    parser.add_argument("out", type=Path, help="folder to write the dataset to")
    args = parser.parse_args(argv)
    try:
        users, items = positives(args.src / "u.data")
        original_users, user_ids = np.unique(users, return_inverse=True)
        original_items, item_ids = np.unique(items, return_inverse=True)
        splits = split(user_ids, item_ids)
        item_table = item_rows(args.src / "u.item", original_items)
        user_table = user_rows(args.src / "u.user", original_users)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, rows in zip(("train.tsv", "valid.tsv", "test.tsv"), splits):
            write_lines(args.out / name, rows)
            print(f"{args.out / name}: {len(rows)} pairs")
        write_lines(args.out / "items.tsv", item_table)
        write_lines(args.out / "users.tsv", user_table)
    except (InputError, OSError) as err:
        print(f"ml100k_split: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
