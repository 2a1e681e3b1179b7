"""wheel-uploader: find staged wheels, download and verify them, upload each exactly once.

The flow, one module per step (``cli`` runs them in this order):

    sources   read the staging location (anaconda.org pages and API, simple indexes)
    select    pick PROJECT VERSION's files and the type filter
    download  fetch them in parallel (resumable, verified, renamed when whole)
    verify    check each file is the distribution its name says; the wheel audit
    publish   upload each file with twine unless the target already has it
    summary   the table and the counts at the end
"""
