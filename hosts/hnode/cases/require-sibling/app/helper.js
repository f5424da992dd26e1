module.exports = { where: "helper next to the script" };
