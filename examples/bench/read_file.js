const fs = require("fs");
for (let i = 0; i < 20000; i++) fs.readFileSync(__filename);
