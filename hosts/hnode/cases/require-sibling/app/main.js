console.log(require("./helper").where);
