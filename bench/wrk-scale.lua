-- wrk script for the scale section: scrapes spread over BENCH_KEYS targets of one multi-target
-- route (BENCH_PATH?target=<i>), as Prometheus 2.42 sends them; the same one-line JSON summary.
dofile(os.getenv("BENCH_WRK_BASE"))
local path = os.getenv("BENCH_PATH")
local keys = tonumber(os.getenv("BENCH_KEYS"))
local counter = 0
request = function()
  -- A stride walks every key without a random number per request; each thread starts elsewhere.
  counter = (counter + 7919) % keys
  return wrk.format(nil, path .. "?target=" .. counter)
end
