"""Generated athletes and tracks for the demo, the benches and the tests. Production training
never uses them."""
