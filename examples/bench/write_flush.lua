local out = io.stdout
for _ = 1, 200000 do
    out:write("x\n")
    out:flush()
end
