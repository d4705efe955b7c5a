-- wrk script: every request POSTs the JSON body read from the file named by the first script
-- argument.
--   wrk -s scripts/bench/post.lua http://127.0.0.1:8000/run -- examples/flow_executor/flows/chat.json
-- For runs counted by a driver, two environment variables (read when the script loads, since
-- whether `response` exists is fixed then, and defining it costs every response):
--   WRK_PROGRESS=PREFIX   each thread appends one byte per response to PREFIX.<thread number>
--                         (1, 2, ...), flushed, so the driver can count responses as they come
--   WRK_STOP_AFTER=N      each thread stops after N responses (wrk itself only ends after -d or
--                         on SIGINT: the driver interrupts it once every thread is done)

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

local progress_prefix = os.getenv("WRK_PROGRESS")
local stop_after = tonumber(os.getenv("WRK_STOP_AFTER") or "")
local progress

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  if progress_prefix then
    progress = assert(io.open(progress_prefix .. "." .. number, "ab"))
  end
end

if progress_prefix or stop_after then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if progress then
      progress:write(".")
      progress:flush()
    end
    if seen == stop_after then
      wrk.thread:stop()
    end
  end
end
