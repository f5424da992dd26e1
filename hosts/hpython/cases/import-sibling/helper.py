def greeting():
    return "hello from helper"
