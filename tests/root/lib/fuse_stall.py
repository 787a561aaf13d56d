# fuse_stall.py MOUNTPOINT REPORT UID GID [allow_other] : a FUSE file system that answers INIT
# and then reads every request and never answers it: the requester sleeps in the kernel until
# /dev/fuse is closed (a SIGKILL does not wake it once the request was read). Root mounts it
# with user_id=UID, as fusermount would for that user. REPORT gets "mounted", then
# "stalled PID" for each request (PID: the requester). With allow_other (a mode-0700 root, as
# a runtime directory has) root's own requests reach it too.
import ctypes, os, struct, sys

mnt, report, uid, gid = sys.argv[1:5]
others = len(sys.argv) > 5 and sys.argv[5] == "allow_other"
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = f"fd={fd},rootmode={'40700' if others else '40000'},user_id={uid},group_id={gid}"
if others:
    opts += ",allow_other"
if libc.mount(b"stall", mnt.encode(), b"fuse", 6, opts.encode()) != 0:  # MS_NOSUID|MS_NODEV
    sys.exit("mount: " + os.strerror(ctypes.get_errno()))


def report_line(text):
    with open(report + ".tmp", "w") as f:
        f.write(text + "\n")
    os.rename(report + ".tmp", report)


while True:
    req = os.read(fd, 1 << 20)
    length, opcode, unique, nodeid, ruid, rgid, rpid = struct.unpack_from("<IIQQIII", req)
    if opcode == 26:  # FUSE_INIT: protocol 7.31, nothing more
        major, minor, readahead, _flags = struct.unpack_from("<IIII", req, 40)
        body = struct.pack("<IIIIHHIIHHI7I", 7, 31, readahead, 0, 1, 1, 4096, 1, 1, 0, 0,
                           *[0] * 7)
        os.write(fd, struct.pack("<IiQ", 16 + len(body), 0, unique) + body)
        report_line("mounted")
        continue
    report_line(f"stalled {rpid}")
