-- wrk script for benches/load.sh: the connections of each thread post Alertmanager webhooks
-- to /alert until the thread has generated its share, then they wait idle until load.sh ends
-- wrk with SIGINT.
--
-- Environment: AEGISIR_LOAD_REQUESTS (total across threads), AEGISIR_LOAD_THREADS,
-- AEGISIR_LOAD_GROUPS (distinct groupKeys, cycled), AEGISIR_LOAD_BODY (file with the
-- payload; its groupKey and fingerprint are made distinct per group), AEGISIR_LOAD_TOKEN.
--
-- wrk always sleeps for its whole --duration, so its own requests per second include the idle
-- time. `done` therefore computes the rate from a monotonic clock, from the first post to the
-- last reply.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } aegisir_timespec;
int clock_gettime(int clock_id, aegisir_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("aegisir_timespec")

local function monotonic_secs()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
    return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

local total = tonumber(os.getenv("AEGISIR_LOAD_REQUESTS") or "20000")
local thread_count = tonumber(os.getenv("AEGISIR_LOAD_THREADS") or "2")
local group_count = tonumber(os.getenv("AEGISIR_LOAD_GROUPS") or "4")
local body_path = os.getenv("AEGISIR_LOAD_BODY")
local token = os.getenv("AEGISIR_LOAD_TOKEN")

local threads = {}
local next_thread_id = 0

function setup(thread)
    thread:set("id", next_thread_id)
    next_thread_id = next_thread_id + 1
    table.insert(threads, thread)
end

local function read_file(path)
    local file = assert(io.open(path, "rb"))
    local text = file:read("*a")
    file:close()
    return text
end

-- Per-thread state. The counters are globals so that `done` can read them with `thread:get`.
local requests = {}
local idle_request
local quota = 0
-- Posts handed to wrk for sending; the report counts those that got a reply.
generated = 0
answered = 0
failed = 0
first_post_secs = 0
last_reply_secs = 0

function init(args)
    quota = math.floor(total / thread_count)
    if id < total % thread_count then
        quota = quota + 1
    end

    local template = read_file(body_path)
    local headers = { ["Content-Type"] = "application/json" }
    if token and token ~= "" then
        headers["Authorization"] = "Bearer " .. token
    end
    for group = 1, group_count do
        local body = template
            :gsub('"groupKey": "[^\n]*"', '"groupKey": "{}:{load=\\"' .. group .. '\\"}"')
            :gsub('"fingerprint": "[^\n]*"', string.format('"fingerprint": "%016x"', group))
        requests[group] = wrk.format("POST", "/alert", headers, body)
    end
    -- Sent only if wrk outlives the idle delay: a path that does not exist, so the server
    -- replies 404 and journals nothing.
    idle_request = wrk.format("GET", "/load-bench-idle")
end

-- Milliseconds a connection waits before its next request: none until the thread's share
-- is generated, then longer than any run.
function delay()
    if generated < quota then
        return 0
    end
    return 600000
end

-- wrk 4.1 calls request() once on the first thread before the run starts, to count
-- pipelined requests (main in src/wrk.c). That request is never sent, so it is not counted.
local pipeline_checked = false

function request()
    if id == 0 and not pipeline_checked then
        pipeline_checked = true
        return requests[1]
    end
    if generated >= quota then
        return idle_request
    end
    if generated == 0 then
        first_post_secs = monotonic_secs()
    end
    generated = generated + 1
    return requests[(generated % group_count) + 1]
end

-- POST /alert never returns 404, so every other status is the reply to a post.
function response(status, headers, body)
    if status == 404 then
        return
    end
    answered = answered + 1
    last_reply_secs = monotonic_secs()
    if status >= 300 then
        failed = failed + 1
    end
end

function done(summary, latency, requests_done)
    local replies = 0
    local failures = 0
    local first = math.huge
    local last = 0
    for _, thread in ipairs(threads) do
        replies = replies + thread:get("answered")
        failures = failures + thread:get("failed")
        first = math.min(first, thread:get("first_post_secs"))
        last = math.max(last, thread:get("last_reply_secs"))
    end
    local seconds = last - first
    local socket_errors = summary.errors.connect + summary.errors.read
        + summary.errors.write + summary.errors.timeout
    io.write(string.format("posts_answered %d\n", replies))
    io.write(string.format("posts_not_2xx %d\n", failures))
    io.write(string.format("socket_errors %d\n", socket_errors))
    io.write(string.format("seconds %.3f\n", seconds))
    io.write(string.format("requests_per_sec %.0f\n", replies / seconds))
    io.write(string.format("p50_ms %.3f\n", latency:percentile(50) / 1000))
    io.write(string.format("p99_ms %.3f\n", latency:percentile(99) / 1000))
    io.write(string.format("max_ms %.3f\n", latency.max / 1000))
end
