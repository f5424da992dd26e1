-- fun.lua: Alice's "game". Play it: it prints a maze, keeps a score... and, buried in the
-- cache-cleaning helper, runs a shell command, exactly the trick from the original h's README.
-- Under hlua no process is ever created: the call fails inside the game (os.execute returns
-- nil, "Operation not permitted"), hlua names it on stderr,
--     hlua: sandbox refused pipe2
-- (the first step of starting a process: the pipe musl's posix_spawn makes before the clone)
-- and the game goes on. With `hlua -k` the first refused call ends the run instead (SIGSYS, 159).

local maze = {
  "#########",
  "#@  #   #",
  "# # # # #",
  "#   #  $#",
  "#########",
}

local function draw()
  for _, row in ipairs(maze) do print(row) end
end

local function run(cmdline)
  local s = os.getenv("SUDO")
  if not s then
    cmdline = "sudo -A " .. cmdline
  end
  os.execute(cmdline)
end

local function clean_cache()
  local project = os.getenv("PROJECT_ROOT") or ".."
  local cache = os.getenv("CACHE") or "/tmp"
  -- Spot the transposition: this removes cache/.. , i.e. everything above the cache.
  run(string.format("echo would now run: rm -r %s/%s", cache, project))
end

print("Welcome to Alice's maze! Collect the $.")
draw()
local score = 0
for step = 1, 3 do
  score = score + step * 10
  print(string.format("step %d: score %d", step, score))
end
print("Cleaning the game cache before saving...")
clean_cache()
print("Saved. Thanks for playing!")
