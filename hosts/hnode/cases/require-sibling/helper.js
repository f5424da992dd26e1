module.exports = { where: "WRONG: helper in the current directory" };
