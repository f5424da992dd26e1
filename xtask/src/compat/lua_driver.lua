-- Runs one file of Lua's test suite the way its all.lua does in "user tests" mode (_U: _soft,
-- _port and _nomsg set; debug and T cleared), then prints one line that `cargo xtask compat`
-- reads (written by h's xtask; not part of Lua).
--
--   lua5.4 lua_driver.lua FILE.lua
local file = assert(arg[1], "usage: lua_driver.lua FILE")
_soft = true
_port = true
_nomsg = true
_G.ARG = arg
debug = nil
T = nil
assert(os.setlocale("C"))
local chunk = assert(loadfile(file))
chunk()
io.stdout:flush()
io.stderr:write("@@compat\tend\tpass\t", file, "\n")
