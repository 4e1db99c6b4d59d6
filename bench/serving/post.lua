-- wrk script: POST the same JSON body on every request.
--
--   BODY_FILE=body.json wrk -t1 -c32 -d10s --latency -s post.lua http://HOST:PORT/PATH
--
-- The body is read once per wrk thread; with no request() function defined,
-- wrk builds the request once and sends the same bytes every time.
local path = os.getenv("BODY_FILE")
if not path then
  error("set BODY_FILE to the request body's file")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
