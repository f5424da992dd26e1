local dir = arg[0]:match("(.*/)") or "./"
for _ = 1, 20000 do
    local file = assert(io.open(dir .. "open_read.lua", "r"))
    file:read("a")
    file:close()
end
