#!/usr/bin/env python3
"""Makes the built-in pose sets (OpenPose body keypoints, COCO-18 order) in this folder.

A 3D stick figure, facing the viewer with its right side on the image's left, is posed
(standing, or a 4-frame walk cycle), turned about the vertical axis to face each direction
and projected orthographically by a camera tilted slightly down, as game sprites are drawn.
Face points that look away from the camera are left out (null), as OpenPose leaves out the
face of someone seen from behind.

Run it from anywhere: python3 make_poses.py  (plain Python 3, no packages).
"""
import json
import math
import os

KEYPOINTS = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
             "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear"]

# Facing directions, clockwise on screen from facing the viewer; yaw turns +z (towards the
# viewer) to the facing direction: E faces the image's right.
DIRECTIONS = {"s": 0, "sw": -45, "w": -90, "nw": -135, "n": 180, "ne": 135, "e": 90, "se": 45}
ORDER_8 = ["s", "sw", "w", "nw", "n", "ne", "e", "se"]
ORDER_4 = ["s", "w", "n", "e"]

TILT = math.radians(20)       # the camera looks down this much
SCALE, FEET_V = 0.80, 0.92    # figure height in canvas heights; where the ground line falls

# Body measures, figure height 1 (top of the head), y up, facing +z, right side at -x.
NECK_Y, SHOULDER_Y, SHOULDER_X, HIP_Y, HIP_X = 0.82, 0.80, 0.11, 0.50, 0.07
UPPER_ARM, FOREARM, THIGH, SHIN = 0.17, 0.15, 0.23, 0.23

# Face points: position relative to the head centre and the direction the point looks
# (degrees from facing, positive towards the figure's left) with the least cosine between
# that and the way to the camera at which OpenPose still finds it.
HEAD = (0.0, 0.91, 0.0)
FACE = {
    "nose": ((0.0, -0.01, 0.06), 0, -0.3),
    "r_eye": ((-0.028, 0.02, 0.05), -30, 0.2),
    "l_eye": ((0.028, 0.02, 0.05), 30, 0.2),
    "r_ear": ((-0.06, 0.005, -0.005), -100, -0.4),
    "l_ear": ((0.06, 0.005, -0.005), 100, -0.4),
}


def limb(start, length, swing, side_out=0.0):
    """The end of a limb hanging from `start`, swung forward by `swing` degrees."""
    a = math.radians(swing)
    return (start[0] + side_out, start[1] - length * math.cos(a), start[2] + length * math.sin(a))


def body(thigh, knee, arm, elbow, bob=0.0):
    """3D keypoints for leg swings (thigh, knee bend) and arm swings (arm, elbow bend), per side."""
    p = {}
    p["neck"] = (0.0, NECK_Y + bob, 0.0)
    for side, sx in (("r", -1), ("l", 1)):
        shoulder = (sx * SHOULDER_X, SHOULDER_Y + bob, 0.0)
        elbow_p = limb(shoulder, UPPER_ARM, arm[side], sx * 0.015)
        wrist = limb(elbow_p, FOREARM, arm[side] + elbow[side], sx * 0.005)
        hip = (sx * HIP_X, HIP_Y + bob, 0.0)
        knee_p = limb(hip, THIGH, thigh[side])
        ankle = limb(knee_p, SHIN, thigh[side] - knee[side])
        p[side + "_shoulder"], p[side + "_elbow"], p[side + "_wrist"] = shoulder, elbow_p, wrist
        p[side + "_hip"], p[side + "_knee"], p[side + "_ankle"] = hip, knee_p, ankle
    head = (HEAD[0], HEAD[1] + bob, HEAD[2])
    for name, (offset, _, _) in FACE.items():
        p[name] = tuple(h + o for h, o in zip(head, offset))
    return p


def idle():
    both = lambda v: {"r": v, "l": v}
    return body(both(0), both(0), both(-3), both(12))


def walk(frame):
    """Frame 0: right foot forward; 1: passing, left leg lifted; 2: left foot forward; 3: passing."""
    phase = frame * math.pi / 2
    swing, lift = 24 * math.cos(phase), max(0.0, math.sin(phase))
    thigh = {"r": swing, "l": -swing}
    knee = {"r": 8 + 40 * max(0.0, -math.sin(phase)), "l": 8 + 40 * lift}
    arm = {"r": -20 * math.cos(phase), "l": 20 * math.cos(phase)}
    elbow = {side: 15 + 0.5 * max(0.0, a) for side, a in arm.items()}  # more bent swinging forward
    bob = -0.015 * abs(math.cos(phase))
    return body(thigh, knee, arm, elbow, bob)


def turn(point, yaw_deg):
    a = math.radians(yaw_deg)
    x, y, z = point
    return (x * math.cos(a) + z * math.sin(a), y, -x * math.sin(a) + z * math.cos(a))


def project(point):
    x, y, z = point
    up = y * math.cos(TILT) - z * math.sin(TILT)
    return [round(0.5 + SCALE * x, 4), round(FEET_V - SCALE * up, 4)]


def visible(name, yaw_deg):
    if name not in FACE:
        return True
    _, look, least = FACE[name]
    # The camera is towards +z (tilt aside); the point looks at yaw + look degrees.
    return math.cos(math.radians(yaw_deg + look)) >= least


def keypoints(pose3d, direction):
    yaw = DIRECTIONS[direction]
    return [project(turn(pose3d[k], yaw)) if visible(k, yaw) else None for k in KEYPOINTS]


def write_set(folder, set_name, action, frames, directions, make):
    poses = []
    for d in directions:
        for f in range(frames):
            name = f"{action}_{d}" if frames == 1 else f"{action}_{d}_{f}"
            poses.append({"name": name, "direction": d, "frame": f, "keypoints": keypoints(make(f), d)})
    doc = {"name": set_name, "poses": poses}
    with open(os.path.join(folder, set_name + ".json"), "w") as out:
        out.write("{\n  \"name\": %s,\n  \"poses\": [\n" % json.dumps(set_name))
        out.write(",\n".join("    " + json.dumps(p, separators=(", ", ": ")) for p in poses))
        out.write("\n  ]\n}\n")
    return doc


def main():
    folder = os.path.dirname(os.path.abspath(__file__))
    write_set(folder, "idle", "idle", 1, ["s"], lambda f: idle())
    write_set(folder, "idle-4dir", "idle", 1, ORDER_4, lambda f: idle())
    write_set(folder, "idle-8dir", "idle", 1, ORDER_8, lambda f: idle())
    write_set(folder, "walk-4dir", "walk", 4, ORDER_4, walk)
    write_set(folder, "walk-8dir", "walk", 4, ORDER_8, walk)


if __name__ == "__main__":
    main()
