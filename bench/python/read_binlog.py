"""The older app's stack, measured: python-mysql-replication reading and decoding a binlog range.

Run by sluice-bench (bench/src/python.rs) from the venv scripts/bench.sh makes
(.work/bench-venv, mysql-replication pinned there). It reads the binlog from --start-file/
--start-pos the way the older app did (BinLogStreamReader, blocking=True, resume_stream=True,
only the row events of one table), decodes every row (`event.rows`), and stops once it has
counted --rows row changes or passed the end position. It prints one JSON object:
{"rows", "seconds", "cpu_s", "vm_hwm_kib", "version"}.
"""
import argparse
import json
import resource
import sys
import time
from importlib.metadata import version

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent


def seq(name):
    return int(name.rsplit(".", 1)[1])


def vm_hwm_kib():
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries the spawning process's
    peak over into it across exec, and the harness may hold a gigabyte of messages."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    for a in ("host", "user", "password", "schema", "table", "start-file", "end-file"):
        p.add_argument("--" + a, required=True)
    for a in ("port", "server-id", "start-pos", "end-pos", "rows"):
        p.add_argument("--" + a, required=True, type=int)
    a = p.parse_args()
    end = (seq(a.end_file), a.end_pos)

    t0 = time.monotonic()
    stream = BinLogStreamReader(
        connection_settings={"host": a.host, "port": a.port, "user": a.user, "passwd": a.password},
        server_id=a.server_id,
        blocking=True,
        resume_stream=True,
        log_file=a.start_file,
        log_pos=a.start_pos,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[a.schema],
        only_tables=[a.table],
    )
    rows = 0
    try:
        for event in stream:
            rows += len(event.rows)  # decodes every row of the event
            if rows >= a.rows or (seq(stream.log_file), stream.log_pos) >= end:
                break
    finally:
        stream.close()
    seconds = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    json.dump(
        {
            "rows": rows,
            "seconds": seconds,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "vm_hwm_kib": vm_hwm_kib(),
            "version": version("mysql-replication"),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
