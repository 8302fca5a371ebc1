"""Idempotency keys (`submit --key`, `key` in batch lines): the same key
gives the same package, before and after it completed, on the command line
and inside one batch; different keys give different packages. Counted in
work_packages, not just in what batonctl prints."""

from concurrent.futures import ThreadPoolExecutor

from harness import main, test
from fixtures_it1 import (CAPABILITY, TWO_LANES_BROKER_ARGS, batch_line,
                          check_all_completed, expected_result, start_fleet,
                          submit_batch, wait_ids, write_batch)


def rows_with_key(pg, key):
    return pg.psql("SELECT id, convert_from(payload, 'UTF8'), state "
                   f"FROM packages_now WHERE idem_key = '{key}'")


def submit_key(broker, key, payload):
    _, out, _ = broker.ctl("submit", "--capability", CAPABILITY,
                             "--payload", payload, "--key", key)
    return out


@test(timeout=60)
def test_same_key_same_package(env):
    broker = env.broker(extra_args=TWO_LANES_BROKER_ARGS)
    pg = env.pg

    # Nobody works yet: the first package stays queued while the repeats come.
    first = submit_key(broker, "order-1001", "first payload")
    assert first["state"] == "queued" and not first.get("duplicate"), first
    again = submit_key(broker, "order-1001", "first payload")
    assert again["id"] == first["id"], (first, again)
    assert again.get("duplicate") is True, again
    # Same key, other payload: still the first package (the key decides).
    other = submit_key(broker, "order-1001", "a different payload")
    assert other["id"] == first["id"], (first, other)
    # Without --json the id alone is on stdout, the note on stderr.
    _, text, err = broker.ctl("submit", "--capability", CAPABILITY, "--payload",
                              "first payload", "--key", "order-1001", json=False)
    assert text.strip() == str(first["id"]), (text, err)
    assert rows_with_key(pg, "order-1001") == [(str(first["id"]), "first payload",
                                                "queued")]

    # Different keys, different packages.
    k2 = submit_key(broker, "order-1002", "second payload")
    k3 = submit_key(broker, "order-1003", "second payload")  # same payload, other key
    assert len({first["id"], k2["id"], k3["id"]}) == 3, (first, k2, k3)
    # No key: every submit is a new package, even with the same payload.
    _, n1, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", "nokey")
    _, n2, _ = broker.ctl("submit", "--capability", CAPABILITY, "--payload", "nokey")
    assert n1["id"] != n2["id"], (n1, n2)

    # One batch: a key twice in the file gives the same id on both lines, a
    # key already known gives the earlier package, and one row each.
    lines = [
        batch_line("batch a", key="batch-key-a"),
        batch_line("batch b", key="batch-key-b"),
        batch_line("batch a again", key="batch-key-a"),
        batch_line("batch c"),
        batch_line("old key", key="order-1002"),
        batch_line("batch b again", key="batch-key-b"),
    ]
    ids = submit_batch(broker, write_batch(env.path("keys.jsonl"), lines), len(lines))
    assert ids[0] == ids[2], ids
    assert ids[1] == ids[5], ids
    assert ids[4] == k2["id"], (ids, k2)
    assert len({ids[0], ids[1], ids[3], ids[4]}) == 4, ids
    assert not {ids[0], ids[1], ids[3]} & {first["id"], k3["id"], n1["id"], n2["id"]}, ids
    assert rows_with_key(pg, "batch-key-a") == [(str(ids[0]), "batch a", "queued")]
    assert rows_with_key(pg, "batch-key-b") == [(str(ids[1]), "batch b", "queued")]
    # The same batch file again: the same ids, nothing new.
    again_ids = submit_batch(broker, env.path("keys.jsonl"), len(lines))
    assert again_ids[:3] == ids[:3] and again_ids[4:] == ids[4:], (ids, again_ids)
    assert again_ids[3] not in ids, "the keyless line is a new package each time"

    all_ids = {first["id"], k2["id"], k3["id"], n1["id"], n2["id"], *ids, *again_ids}
    count = int(pg.scalar("SELECT count(*) FROM work_packages"))
    assert count == len(all_ids) == 9, (count, sorted(all_ids))

    # Now let them run to completion.
    start_fleet(env, broker, vendors=(("acme", "EU-DE", (2,)),))
    wait_ids(broker, sorted(all_ids), timeout=60)
    pkgs = check_all_completed(pg, exact_ids=all_ids)
    assert pkgs[first["id"]][2] == expected_result("first payload")

    # After completion the key still answers with the first package, completed.
    done = submit_key(broker, "order-1001", "first payload")
    assert done["id"] == first["id"] and done["state"] == "completed", done
    assert done.get("duplicate") is True, done
    ids3 = submit_batch(broker, write_batch(env.path("keys2.jsonl"), [
        batch_line("x", key="batch-key-a"), batch_line("y", key="order-1001")]), 2)
    assert ids3 == [ids[0], first["id"]], ids3
    assert int(pg.scalar("SELECT count(*) FROM work_packages")) == 9
    assert rows_with_key(pg, "order-1001") == [(str(first["id"]), "first payload",
                                                "completed")]
    _, show, _ = broker.ctl("package", "show", first["id"])
    assert show["state"] == "completed" and show["key"] == "order-1001", show
    assert len(show["attempts"]) == 1, show["attempts"]
    # Still exactly one completed attempt each; nothing was queued again.
    check_all_completed(pg, exact_ids=all_ids)
    _, stats, _ = broker.ctl("stats")
    assert stats["completed"] == 9 and stats["queued"] == 0, stats
    # The agents were idle: each resubmit was placed at its submit
    # (route_at_submit) before the database named the earlier package. Its
    # attempt went nowhere, and its slot is free.
    assert pg.scalar("SELECT count(*) FROM attempts a WHERE NOT EXISTS"
                     " (SELECT 1 FROM work_packages w WHERE w.id = a.package_id)") == "0"
    assert stats["assigned"] == 0 and stats["running"] == 0, stats

    # And a key survives a broker restart (it is in the database, not only
    # in memory).
    broker.restart()
    after = submit_key(broker, "order-1001", "first payload")
    assert after["id"] == first["id"] and after["state"] == "completed", after
    assert int(pg.scalar("SELECT count(*) FROM work_packages")) == 9


def submit_at_once(broker, a, b, n):
    """Batch files a and b (n lines each) through two batonctl processes
    started together; their answers' ids."""
    with ThreadPoolExecutor(2) as pool:
        fa, fb = pool.submit(submit_batch, broker, a, n), pool.submit(submit_batch, broker, b, n)
        return fa.result(), fb.result()


@test(timeout=60)
def test_large_keyed_batches_across_submit_lanes(env):
    """Submits of 64 packages or more take turns over the submit connections
    (store_submit_lanes), so two sent at once commit on two backends. Their
    keys still name one package each: two batches of 100 sharing 50 keys,
    sent at the same moment, make 150 packages, and both answers give the
    shared keys the same ids."""
    broker = env.broker(extra_args=["--set", "store_submit_lanes=2"])
    pg = env.pg
    a = write_batch(env.path("a.jsonl"),
                    [batch_line(f"a{i}", key=f"lane-{i}") for i in range(100)])
    b = write_batch(env.path("b.jsonl"),
                    [batch_line(f"b{i}", key=f"lane-{i}") for i in range(50, 150)])
    ids_a, ids_b = submit_at_once(broker, a, b, 100)
    assert ids_a[50:] == ids_b[:50], "a shared key answered with two packages"
    assert len(set(ids_a) | set(ids_b)) == 150
    rows = pg.psql("SELECT idem_key, id FROM work_packages WHERE idem_key LIKE 'lane-%'")
    by_key = {k: int(i) for k, i in rows}
    assert len(rows) == len(by_key) == 150, len(rows)
    assert [by_key[f"lane-{i}"] for i in range(100)] == ids_a
    assert [by_key[f"lane-{i}"] for i in range(50, 150)] == ids_b
    # The same two batches again, at once: the same ids, nothing new.
    assert submit_at_once(broker, a, b, 100) == (ids_a, ids_b)
    assert int(pg.scalar("SELECT count(*) FROM work_packages")) == 150


if __name__ == "__main__":
    main()
