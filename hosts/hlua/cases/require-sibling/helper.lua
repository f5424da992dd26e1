return { greet = function() return "hello from helper" end }
