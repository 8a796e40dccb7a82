"""The peak memory of a process measured from inside it, for scripts the scale tests run as processes.

Not a test module. ``PEAK`` is source text defining ``peak()``: the process's own high-water
resident set in KB (``VmHWM``). ``ru_maxrss`` would not do: it carries over the RSS of the test
process that forked it.
"""

PEAK = '''
def peak():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
'''
