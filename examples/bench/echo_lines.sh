# 100,000 lines, each its own write: what the supervisor's relay makes of many small writes
# (docs/overhead.md: the supervisor's SCHED_BATCH).
i=0
while [ $i -lt 100000 ]; do
    echo x
    i=$((i + 1))
done
