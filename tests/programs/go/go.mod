module skiffgo

go 1.19
