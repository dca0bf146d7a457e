-- wrk script: scrape requests as Prometheus 2.42 sends them, and a one-line JSON summary.
-- BENCH_GZIP=0 leaves out Accept-Encoding (a client that wants identity).
wrk.method = "GET"
wrk.headers["Accept"] = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
wrk.headers["User-Agent"] = "Prometheus/2.42.0"
wrk.headers["X-Prometheus-Scrape-Timeout-Seconds"] = "10"
if os.getenv("BENCH_GZIP") ~= "0" then
  wrk.headers["Accept-Encoding"] = "gzip"
end
-- BENCH_AUTHORIZATION: the whole Authorization header (the basic-auth line of the security section).
if os.getenv("BENCH_AUTHORIZATION") then
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
