"""The benchmark's arithmetic: reading wrk's report, ratios per round, targets."""

import os

import pytest

from bench.measure import RssWatch, interleave, median, parse_wrk, round_ratios
from bench.report import Figure
from bench.tasks import bundle_files

WRK_LATENCY = """\
Running 1s test @ http://127.0.0.1:18999/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  668.53us   5.82ms   68.48%
    Req/Sec     0.92k    31.66     0.99k    80.00%
  Latency Distribution
     50%    2.09ms
     75%    2.50ms
     90%    2.95ms
     99%    3.80ms
  914 requests in 1.00s, 1.87MB read
Requests/sec:    913.29
Transfer/sec:      1.87MB
"""

WRK_FAILURES = """\
Running 1s test @ http://127.0.0.1:18999/nope
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.16ms    1.02ms  15.17ms   97.68%
    Req/Sec     1.73k   129.51     1.83k    90.91%
  1895 requests in 1.10s, 0.94MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 1895
Requests/sec:   1723.50
Transfer/sec:      0.85MB
"""


def test_parse_wrk_reads_rate_requests_and_latency_percentiles_in_ms():
    result = parse_wrk(WRK_LATENCY)
    assert result["rps"] == 913.29
    assert result["requests"] == 914
    assert result["latency_p50_ms"] == 2.09
    assert result["latency_p99_ms"] == 3.8
    assert result["latency_avg_ms"] == 2.1
    assert result["non_2xx_3xx"] == 0
    assert result["errors"] == 0


def test_parse_wrk_counts_failed_responses_and_socket_errors():
    result = parse_wrk(WRK_FAILURES)
    assert result["non_2xx_3xx"] == 1895
    assert result["errors"] == 2  # timeouts; read errors are connections the server closed
    assert result["read_errors"] == 3
    assert result["seconds"] == pytest.approx(1.1)


def test_parse_wrk_refuses_output_without_a_rate():
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused")


def test_interleave_alternates_variants_and_ratios_pair_rounds():
    calls = []
    counter = iter(range(100))

    def run(name):
        def call():
            calls.append(name)
            return {"rps": next(counter)}

        return call

    results = interleave(3, {"baseline": run("baseline"), "json": run("json")})
    assert calls == ["baseline", "json"] * 3
    rates = {name: [r["rps"] for r in runs] for name, runs in results.items()}
    assert rates == {"baseline": [0, 2, 4], "json": [1, 3, 5]}
    assert round_ratios([1, 3, 5], [2, 4, 10]) == [0.5, 0.75, 0.5]
    assert median([0.5, 0.75, 0.5]) == 0.5


@pytest.mark.parametrize(
    ("value", "target", "verdict"),
    [
        (0.61, ">= 0.6", "PASS"),
        (0.59, ">= 0.6", "FAIL"),
        (6, "<= 6", "PASS"),
        (7, "<= 6", "FAIL"),
        (99, "== 100", "FAIL"),
        (100, "== 100", "PASS"),
        (1234, "", "info"),
        (None, "<= 3", "N/A"),
    ],
)
def test_figure_verdict_compares_the_value_with_its_target(value, target, verdict):
    assert Figure("k", "title", value, target=target).verdict == verdict


def test_rss_watch_sees_the_peak_of_memory_freed_before_the_block_ends():
    with RssWatch(os.getpid()) as watch:
        block = b"x" * (64 * 1024 * 1024)  # written: every page is resident
        del block
    assert 60 <= watch.growth_mib < 200


def test_bundle_files_add_up_to_the_total_with_distinct_keys():
    files = bundle_files(1024**3, 10)
    assert sum(size for _, size in files) == 1024**3
    assert [size for _, size in files] == [107_374_183] * 4 + [107_374_182] * 6
    assert len({key for key, _ in files}) == 10
    assert files[0][0] == "bench/bundle-1073741824/part-01.bin"
    assert bundle_files(30, 3) == [(f"bench/bundle-30/part-0{n}.bin", 10) for n in (1, 2, 3)]
