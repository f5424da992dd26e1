-- Allocation-heavy Lua: 300,000 small tables and strings, then 100,000 strings joined. Measures
-- the allocator under Lua's states (docs/overhead.md: hlua on musl).
local t = {}
for i = 1, 300000 do
    t[#t + 1] = { i, tostring(i), name = "n" .. i }
    if #t > 1000 then t = {} end
end
local s = {}
for i = 1, 100000 do s[#s + 1] = string.rep("ab", i % 50) end
print(#table.concat(s))
