"""Reference Thunder: a small Python stand-in for the parts of Thunder the harness talks to.

This is NOT Thunder (WPEFramework). It exists so that CI can exercise the conformance harness
end to end inside the reference image. Modules used by the plugin host (frames, ocdm_impl,
host) import only os, sys, socket, json, struct, signal, errno and time.
"""
