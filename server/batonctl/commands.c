/*
 * The command table: every batonctl command is one row here (words, usage line,
 * summary, help text, options, positional counts, handler). The parser, the
 * dispatcher and `batonctl help` read only this table, so a new command is a new
 * row and a handler in its group's commands_<group>.c.
 *
 * Usage lines and option names follow CONTRACT.md (batonctl); do not rename.
 */
#include "commands.h"

#include <stdint.h>

static const bt_cli_opt_t vendor_add_opts[] = {
    {"region", BT_CLI_OPT_VALUE},  {"model", BT_CLI_OPT_VALUE},
    {"capability", BT_CLI_OPT_LIST}, {"cert", BT_CLI_OPT_LIST},
    {"capacity", BT_CLI_OPT_VALUE}, {"cost", BT_CLI_OPT_VALUE},
    {"hours", BT_CLI_OPT_VALUE},   {"weight", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t submit_opts[] = {
    {"capability", BT_CLI_OPT_VALUE}, {"payload", BT_CLI_OPT_VALUE},
    {"payload-file", BT_CLI_OPT_VALUE}, {"priority", BT_CLI_OPT_VALUE},
    {"deadline", BT_CLI_OPT_VALUE},   {"not-before", BT_CLI_OPT_VALUE},
    {"region", BT_CLI_OPT_LIST},      {"cert", BT_CLI_OPT_LIST},
    {"max-cost", BT_CLI_OPT_VALUE},   {"prefer", BT_CLI_OPT_LIST},
    {"avoid", BT_CLI_OPT_LIST},       {"max-attempts", BT_CLI_OPT_VALUE},
    {"key", BT_CLI_OPT_VALUE},        {"batch", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t package_list_opts[] = {
    {"state", BT_CLI_OPT_VALUE},      {"vendor", BT_CLI_OPT_VALUE},
    {"capability", BT_CLI_OPT_VALUE}, {"limit", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t result_opts[] = {
    {"out", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t package_reassign_opts[] = {
    {"to", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t handoffs_opts[] = {
    {"vendor", BT_CLI_OPT_VALUE},
    {"package", BT_CLI_OPT_VALUE},
    {"since", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t audit_opts[] = {
    {"since", BT_CLI_OPT_VALUE},
    {"package", BT_CLI_OPT_VALUE},
    {"vendor", BT_CLI_OPT_VALUE},
    {"limit", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t top_opts[] = {
    {"interval", BT_CLI_OPT_VALUE},
    {"once", BT_CLI_OPT_FLAG},
    {NULL, BT_CLI_OPT_FLAG},
};

static const bt_cli_opt_t wait_opts[] = {
    {"all", BT_CLI_OPT_FLAG},
    {"timeout", BT_CLI_OPT_VALUE},
    {NULL, BT_CLI_OPT_FLAG},
};

const bt_cli_cmd_t bt_cli_commands[] = {
    {
        "vendor add",
        "NAME --region R [--model onshore|nearshore|offshore|captive] "
        "--capability C ... [--cert X ...] [--capacity N] [--cost X] "
        "[--hours \"Mon-Fri 08:00-18:00 Europe/Berlin\"] [--weight W]",
        "register a vendor; prints its id and its secret (shown once)",
        "Registers a vendor and prints its id and the secret its agents\n"
        "authenticate with. The secret is shown only this once; the broker\n"
        "keeps only a key derived from it.\n"
        "\n"
        "  --region R        jurisdiction for data residency, e.g. EU-DE, US, IN\n"
        "  --model M         onshore (default), nearshore, offshore or captive\n"
        "  --capability C    a capability the vendor offers; repeat the flag or\n"
        "                    give a comma-separated list; at least one\n"
        "  --cert X          a certification held (iso27001, soc2, ...); as above\n"
        "  --capacity N      max concurrent packages (default 10)\n"
        "  --cost X          cost per package (default 1.0)\n"
        "  --hours SPEC      working hours, e.g. \"Mon-Fri 08:00-18:00 "
        "Europe/Berlin\"\n"
        "  --weight W        routing weight (default 1.0)\n"
        "\n"
        "JSON: {id, name, secret}\n",
        vendor_add_opts,
        1,
        1,
        bt_cli_cmd_vendor_add,
    },
    {
        "vendor list",
        "",
        "list vendors with their state and load",
        "Lists every vendor: region, model, state, capabilities, capacity,\n"
        "cost, connected agents, packages in flight and completed/failed counts.\n"
        "\n"
        "JSON: array of {id, name, region, model, capabilities, certs, capacity,\n"
        "cost, hours, weight, state, state_reason, limit, probing, agents,\n"
        "in_flight, completed, failed, on_time_rate, created_at}; on_time_rate\n"
        "is null until a package with a deadline has completed; state_reason is\n"
        "null while active; limit is the packages in flight allowed now, below\n"
        "capacity while a recovered vendor is probed (probing true).\n",
        NULL,
        0,
        0,
        bt_cli_cmd_vendor_list,
    },
    {
        "vendor show",
        "V",
        "show one vendor (V = id or name)",
        "Shows one vendor, named by id or name.\n"
        "\n"
        "JSON: the vendor object of `vendor list`.\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_show,
    },
    {
        "vendor drain",
        "V",
        "stop giving a vendor new work; what runs may finish",
        "Puts the vendor in state draining: it gets no new packages; those it\n"
        "runs may finish. `vendor resume` makes it active again.\n"
        "\n"
        "JSON: {id, name, state, state_reason}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_drain,
    },
    {
        "vendor suspend",
        "V",
        "switch a vendor off; its running work is handed off",
        "Puts the vendor in state suspended: no new packages and no new agent\n"
        "sessions; the packages it runs are revoked and handed off to other\n"
        "vendors (reason admin). `vendor resume` makes it active again.\n"
        "\n"
        "JSON: {id, name, state, state_reason}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_suspend,
    },
    {
        "vendor resume",
        "V",
        "make a vendor active again at full capacity",
        "Puts the vendor back in state active at its full capacity, from any\n"
        "state (draining, suspended, failed or degraded).\n"
        "\n"
        "JSON: {id, name, state, state_reason}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_resume,
    },
    {
        "vendor fail",
        "V",
        "declare a vendor failed; its in-flight work is handed off now",
        "Puts the vendor in state failed: no new packages, and the packages it\n"
        "runs are revoked and handed off to other eligible vendors now (reason\n"
        "vendor-failed), each with its last checkpoint. A vendor failed by an\n"
        "admin is not probed again: only `vendor resume` brings it back.\n"
        "\n"
        "JSON: {id, name, state, state_reason}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_fail,
    },
    {
        "vendor rotate-secret",
        "V",
        "give a vendor a new secret (shown once); the old one stops working",
        "Makes a new secret for the vendor and prints it once the broker has\n"
        "committed the key derived from it. The secret is shown only this\n"
        "once; the broker keeps only the key. From then on the old secret\n"
        "authenticates no one, and every connected agent of the vendor must\n"
        "authenticate again: restart its agents with the new secret. The\n"
        "broker revokes no running work; an agent that cannot come back (a\n"
        "baton-agent refused with the old secret stops and exits) is lost\n"
        "when its lease runs out and its work is handed off as usual.\n"
        "\n"
        "JSON: {id, name, state, secret}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_vendor_rotate_secret,
    },
    {
        "agent list",
        "",
        "list live and recently seen agents",
        "Lists agents: vendor, name, state (connected, lost, gone), slots, busy\n"
        "slots, capabilities and how long ago each was last heard.\n"
        "\n"
        "JSON: array of {id, vendor, name, capabilities, slots, busy,\n"
        "last_seen_ms, state}\n",
        NULL,
        0,
        0,
        bt_cli_cmd_agent_list,
    },
    {
        "submit",
        "--capability C [--payload TEXT | --payload-file F] [--priority 0-9] "
        "[--deadline D] [--not-before T] [--region R,...] [--cert X,...] "
        "[--max-cost X] [--prefer V,...] [--avoid V,...] [--max-attempts N] "
        "[--key K]\n"
        "       batonctl submit --batch FILE",
        "submit one package, or a batch from a JSON Lines file",
        "Submits one work package and prints its id once the broker has\n"
        "committed it (id=$(batonctl submit ...) works in scripts).\n"
        "\n"
        "  --capability C     the capability that handles it (required)\n"
        "  --payload TEXT     payload bytes; or --payload-file F (- = stdin);\n"
        "                     neither: an empty payload\n"
        "  --priority 0-9     higher runs first (default 0)\n"
        "  --deadline D       SLA: a duration from now (90s, 15m, 2h, 3d) or an\n"
        "                     RFC 3339 time\n"
        "  --not-before T     do not start earlier; duration or RFC 3339 time\n"
        "  --region R,...     allowed vendor regions (data residency)\n"
        "  --cert X,...       certifications the vendor must hold\n"
        "  --max-cost X       highest acceptable cost per package\n"
        "  --prefer V,...     vendors to prefer; --avoid V,... vendors to avoid\n"
        "  --max-attempts N   attempts before the package is dead (1-1000)\n"
        "  --key K            idempotency key: the same key twice returns the\n"
        "                     first package\n"
        "List flags may be repeated or take comma-separated values.\n"
        "\n"
        "--batch FILE (- = stdin) submits JSON Lines, one package per line,\n"
        "with the flag names as keys ('_' for '-'): capability, payload or\n"
        "payload_b64, priority, deadline, not_before, region, cert, max_cost,\n"
        "prefer, avoid, max_attempts, key. Lists are JSON arrays or\n"
        "comma-separated strings; null means absent; blank lines are skipped.\n"
        "One bad line rejects the whole batch (\"line N: reason\", exit 1) and\n"
        "nothing is sent. Large batches go in chunks of up to 5000 packages,\n"
        "each committed atomically. Prints one id per line, in file order.\n"
        "\n"
        "JSON: {id, state, duplicate}; with --batch {ids}\n",
        submit_opts,
        0,
        0,
        bt_cli_cmd_submit,
    },
    {
        "package show",
        "ID",
        "show one package with its attempts and handoffs",
        "Shows one package: its state, where it runs, why it waits, its\n"
        "requirements, every attempt and every handoff.\n"
        "\n"
        "JSON: {id, capability, state, priority, deadline, not_before, vendor,\n"
        "agent, attempt, waiting_reason, progress, result_bytes, key,\n"
        "submitted_at, completed_at, regions, certs, max_cost, prefer, avoid,\n"
        "max_attempts, payload_bytes, error,\n"
        "attempts[{attempt, vendor, agent, started, ended, outcome, exit_code,\n"
        "error}], handoffs[{from_vendor, to_vendor, reason, at,\n"
        "checkpoint_bytes}]}; times are RFC 3339 or null.\n",
        NULL,
        1,
        1,
        bt_cli_cmd_package_show,
    },
    {
        "package list",
        "[--state S] [--vendor V] [--capability C] [--limit N]",
        "list packages",
        "Lists packages, filtered by state (queued, assigned, running,\n"
        "completed, dead, cancelled), vendor or capability; --limit N caps the\n"
        "count (the broker's default is 100).\n"
        "\n"
        "JSON: array of the `package show` object without attempts and handoffs\n",
        package_list_opts,
        0,
        0,
        bt_cli_cmd_package_list,
    },
    {
        "package cancel",
        "ID",
        "cancel a package, also while it runs",
        "Cancels a package that has not finished. A running package's agent is\n"
        "told to stop its handler; a result it still sends is ignored. A\n"
        "completed, dead or cancelled package cannot be cancelled (exit 1).\n"
        "\n"
        "JSON: {id, state}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_package_cancel,
    },
    {
        "package retry",
        "ID",
        "run a waiting, dead or cancelled package again now",
        "Queues a package again now: a queued one waiting out a retry backoff\n"
        "or its not-before time is released, a dead or cancelled one gets new\n"
        "attempts. A package that is assigned or running is refused (exit 1).\n"
        "\n"
        "JSON: {id, state}\n",
        NULL,
        1,
        1,
        bt_cli_cmd_package_retry,
    },
    {
        "package reassign",
        "ID [--to V]",
        "move a package to another vendor",
        "Revokes the package's current attempt and hands it off (reason admin,\n"
        "with its last checkpoint), then queues it again. With --to V (id or\n"
        "name) only that vendor may take it; the package's requirements still\n"
        "hold, so a vendor they exclude is refused (exit 1).\n"
        "\n"
        "JSON: {id, state}\n",
        package_reassign_opts,
        1,
        1,
        bt_cli_cmd_package_reassign,
    },
    {
        "result",
        "ID [--out FILE]",
        "print a completed package's result bytes",
        "Writes the result of a completed package, byte for byte, to stdout or\n"
        "to FILE. A package that has not completed is an error (exit 1).\n"
        "\n"
        "JSON: {id, state, result_b64}\n",
        result_opts,
        1,
        1,
        bt_cli_cmd_result,
    },
    {
        "wait",
        "ID ... | --all [--timeout D]",
        "wait until packages are completed, dead or cancelled",
        "Polls the broker until none of the packages (or, with --all, no\n"
        "package at all) is pending. On a terminal a progress bar is drawn on\n"
        "stderr. Exit 0 when nothing is pending; exit 1 on timeout or when\n"
        "some ids do not exist.\n"
        "\n"
        "  --timeout D   give up after D (90s, 15m, 2h, ...)\n"
        "\n"
        "JSON: {completed, dead, cancelled, pending, unknown}\n",
        wait_opts,
        0,
        SIZE_MAX,
        bt_cli_cmd_wait,
    },
    {
        "handoffs",
        "[--vendor V] [--package ID] [--since T]",
        "handoff history",
        "Lists handoffs, oldest first: which package moved away from which\n"
        "vendor, to which (empty until it is assigned again), why, when, and\n"
        "the size of the checkpoint it carried. At most the newest 10000.\n"
        "\n"
        "  --vendor V     handoffs from or to this vendor (id or name)\n"
        "  --package ID   handoffs of this package\n"
        "  --since T      at or after T: an RFC 3339 time, or a duration ago\n"
        "                 (90s, 15m, 2h, 3d)\n"
        "\n"
        "JSON: array of {package, attempt, from_vendor, to_vendor, reason, at,\n"
        "checkpoint_bytes}; to_vendor is null until the package is routed again;\n"
        "reason is vendor-failed, agent-lost, lease-expired, drain, sla-risk or\n"
        "admin.\n",
        handoffs_opts,
        0,
        0,
        bt_cli_cmd_handoffs,
    },
    {
        "stats",
        "",
        "whole-system counters",
        "Counts packages by state, vendors by state and connected agents.\n"
        "\n"
        "JSON: {queued, waiting, assigned, running, completed, dead, cancelled,\n"
        "vendors{state: count}, agents}\n",
        NULL,
        0,
        0,
        bt_cli_cmd_stats,
    },
    {
        "scorecard",
        "[V]",
        "vendor KPIs from history",
        "Computes each vendor's record from the store: attempts completed and\n"
        "failed on it, handoffs away from it, the share of its completed\n"
        "packages with a deadline that finished by it, the median and 95th\n"
        "percentile of submitted-to-completed time of its completed packages,\n"
        "and completed x its cost per package. V (an id or a name) limits it to\n"
        "one vendor; an unknown one exits 1.\n"
        "\n"
        "JSON: array of {vendor, completed, failed, handed_off, on_time_rate,\n"
        "turnaround_p50_ms, turnaround_p95_ms, cost_total}; on_time_rate is null\n"
        "when no completed package had a deadline, the turnarounds when it\n"
        "completed nothing.\n",
        NULL,
        0,
        1,
        bt_cli_cmd_scorecard,
    },
    {
        "audit",
        "[--since T] [--package ID] [--vendor V] [--limit N]",
        "the audit trail",
        "Lists the audit trail, oldest first: who (admin, broker, agent,\n"
        "submitter, control) did what to which subject: admin actions,\n"
        "vendor and agent state changes, submits (package.submit) and the end\n"
        "of every attempt (attempt.completed, attempt.failed, ...; the detail\n"
        "names the vendor, the agent and the package's next state). The trail\n"
        "is append-only.\n"
        "\n"
        "  --since T      at or after T: an RFC 3339 time, or a duration ago\n"
        "                 (90s, 15m, 2h, 3d)\n"
        "  --package ID   events of this package (subject package:ID)\n"
        "  --vendor V     events of this vendor (id or name), of its agents and\n"
        "                 of the attempts it ran\n"
        "  --limit N      at most the newest N (1-100000, default 1000)\n"
        "\n"
        "JSON: array of {at, actor, action, subject, detail}\n",
        audit_opts,
        0,
        0,
        bt_cli_cmd_audit,
    },
    {
        "top",
        "[--interval D] [--once]",
        "live terminal view of vendors, load and handoffs",
        "Redraws in place every D (default 1s, at least 200ms): two header\n"
        "lines with the time (UTC), connected agents, the completion rate since\n"
        "the previous refresh, and packages queued (and of those waiting),\n"
        "assigned, running, completed and dead; a table of vendors (region,\n"
        "state, agents, load as in-flight/limit/capacity, completed, failed,\n"
        "on-time rate, state reason); and the last 8 handoffs (time, package,\n"
        "from \u2192 to, reason). Lines are cut to the terminal's width and the\n"
        "frame to its height. It uses the terminal's alternate screen, which\n"
        "is left again on every way out.\n"
        "\n"
        "Keys: q (or Ctrl-C) quits, space refreshes now. SIGTERM and SIGHUP\n"
        "quit too; the exit status is then 0.\n"
        "\n"
        "  --interval D   time between refreshes (200ms-1h)\n"
        "  --once         print one frame and exit\n"
        "\n"
        "When stdout is not a terminal, or with --once, one frame is printed\n"
        "as plain text without escape codes (the rate shows \"-\").\n"
        "\n"
        "JSON: none; --json is a usage error (exit 2). Scripts use stats,\n"
        "vendor list and handoffs with --json.\n",
        top_opts,
        0,
        0,
        bt_cli_cmd_top,
    },
    {
        "config get",
        "[KEY]",
        "show the running broker's configuration",
        "Shows every configuration key (or only KEY) as the broker runs with\n"
        "it now: its value, its default, and whether it may change at run time\n"
        "(`config set`, SIGHUP) or needs a restart. Values are written as the\n"
        "config file takes them (3s, 1500ms, 512k, 0.5), so a value shown here\n"
        "can be given to `config set` as it is. A secret (admin_token) shows as\n"
        "\"(set)\", never its value. An unknown KEY exits 1.\n"
        "\n"
        "JSON: array of {key, value, default, runtime, help}; with KEY one object.\n",
        NULL,
        0,
        1,
        bt_cli_cmd_config_get,
    },
    {
        "config set",
        "KEY VALUE",
        "change a runtime key of the running broker",
        "Changes KEY of the running broker to VALUE, in the config file's\n"
        "syntax (durations 500ms, 3s, 2m; sizes 512k, 1m; numbers 0.5). Only keys\n"
        "`config get` shows with runtime yes may change: the retry backoff and\n"
        "max attempts, routing weights, share cap, aging and vendor health keys,\n"
        "and log_level. It is answered once the change is in effect and its audit\n"
        "row (config.set) is committed. Exit 1: an unknown KEY, a VALUE that is\n"
        "malformed or out of range (the message names the bounds), or a key that\n"
        "needs a restart.\n"
        "\n"
        "The change is not saved to the config file: the next SIGHUP re-reads the\n"
        "file and the file's value wins; edit the file as well to keep it.\n"
        "\n"
        "JSON: {key, value, previous}\n",
        NULL,
        2,
        2,
        bt_cli_cmd_config_set,
    },
    {NULL, NULL, NULL, NULL, NULL, 0, 0, NULL},
};
