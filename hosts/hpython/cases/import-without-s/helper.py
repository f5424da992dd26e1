print("must not be imported")
